"""`reconciler archive --backfill` queues the clips that hold URLs from before archiving was on,
page by page; a running service then archives them; bad arguments and archiving left off are
refused with one line."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.archiving import (
    BUCKET,
    archive_env,
    archive_tasks,
    assert_archived_byte_for_byte,
    serve_videos,
)
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.plugin import AppFactory
from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


async def test_backfill_queues_old_urls_and_the_service_archives_them(
    db: asyncpg.Connection,
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
) -> None:
    serve_videos(simulator)
    truth: dict[str, str] = {}
    for i in range(7):
        job = J.named(f"before-{i}")
        simulator.add_job(job, duration=0, outcome="success")
        truth[job] = simulator.truth()[job]
    # Written before archiving was on: three projects of URLs, one with nothing to archive.
    jobs = sorted(truth)
    for chunk in (jobs[:3], jobs[3:5], jobs[5:]):
        await new_project(db, {job: truth[job] for job in chunk})
    await new_project(db, {"x": "failed"})
    env = archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY)

    done = await asyncio.to_thread(
        run_reconciler, env, "archive", "--backfill", "--page-size", "2", "--pause-seconds", "0"
    )
    again = await asyncio.to_thread(run_reconciler, env, "archive", "--backfill")

    assert done.returncode == 0, done.stderr
    assert "Scanned 4 projects; queued 7 clips for archiving." in done.stdout
    assert "7 waiting" in done.stdout
    assert "queued 0 clips" in again.stdout
    async with run_app(env):

        async def archived() -> bool:
            tasks = await archive_tasks(db)
            return len(tasks) == 7 and all(t["state"] == "archived" for t in tasks.values())

        await wait_until(archived, timeout=60)
    assert await assert_archived_byte_for_byte(db, storage, storage.url) == 7

    report = await asyncio.to_thread(run_reconciler, env, "archive")
    assert report.returncode == 0, report.stderr
    assert "0 waiting" in report.stdout
    assert "7 archived" in report.stdout


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (("--page-size", "0"), "--page-size: must be at least 1"),
        (("--page-size", "many"), "--page-size: expected a number"),
        (("--pause-seconds", "-1"), "--pause-seconds: must be at least 0"),
    ],
)
async def test_bad_arguments_are_refused(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    args: tuple[str, ...],
    complaint: str,
) -> None:
    env = archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY)

    result = await asyncio.to_thread(run_reconciler, env, "archive", "--backfill", *args)

    assert result.returncode == 2
    assert complaint in result.stderr


async def test_archiving_off_is_refused_with_the_setting_named(
    service_env: dict[str, str],
) -> None:
    result = await asyncio.to_thread(run_reconciler, service_env, "archive", "--backfill")

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: RECONCILER_ARCHIVE: must be supabase to back-fill or report archiving"
    ]
