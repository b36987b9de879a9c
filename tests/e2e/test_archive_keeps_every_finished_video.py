"""With archiving on, every finished video ends in Storage byte for byte and its clip holds the
object's public URL, on both transports, whichever path wrote the Runware URL (poll or
webhook); failed clips and clips the reconciler never wrote are left alone."""

from __future__ import annotations

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
    running_supabase_with_storage,
    serve_videos,
)
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory
from tests.projects import clips_of, new_project
from tests.scrape import scrape
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

APP_URL = "https://cdn.example.com/mine.mp4"


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


@pytest.fixture(params=["postgres", "supabase"])
async def archiving_env(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    database_url: str,
) -> AsyncIterator[tuple[dict[str, str], str]]:
    """The service's settings on each transport, and the SUPABASE_URL Storage is reached at."""
    serve_videos(simulator)
    if request.param == "postgres":
        yield archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY), storage.url
        return
    async with running_supabase_with_storage(database_url, storage) as url:
        env = archive_env(service_env, simulator, url, SERVICE_ROLE_KEY)
        env = {k: v for k, v in env.items() if k != "DATABASE_URL"} | {"RECONCILER_FEED": "off"}
        yield env, url


async def test_every_finished_video_is_archived_byte_for_byte(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    archiving_env: tuple[dict[str, str], str],
) -> None:
    env, supabase_url = archiving_env
    jobs = [J.named(f"job-{i}") for i in range(6)]
    for job in jobs:
        simulator.add_job(job, duration=0, outcome="success")
    simulator.add_job(J.broken, duration=0, outcome="error")
    first = await new_project(db, {**dict.fromkeys(jobs[:3], "pending"), J.app: APP_URL})
    second = await new_project(db, {**dict.fromkeys(jobs[3:], "pending"), J.broken: "pending"})

    async with run_app(env) as app:
        assert app.services.archive is not None

        async def all_archived() -> bool:
            tasks = await archive_tasks(db)
            return len(tasks) == len(jobs) and all(t["state"] == "archived" for t in tasks.values())

        await wait_until(all_archived, timeout=60)
        counts = app.services.archive.counts
        metrics = await scrape(app.url)

    assert await assert_archived_byte_for_byte(db, storage, supabase_url) == len(jobs)
    assert counts.outcomes["archived"] == len(jobs)
    assert counts.bytes_archived == len(jobs) * simulator.config.videos.size_bytes
    assert metrics.get("reconciler_archive_tasks_total", outcome="archived") == len(jobs)
    assert metrics.get("reconciler_archive_bytes_total") == counts.bytes_archived
    assert metrics.get("reconciler_archive_paused") == 0
    # Only what the reconciler wrote moved: the app's own URL and the failed clip stay.
    assert (await clips_of(db, first))[J.app] == APP_URL
    assert (await clips_of(db, second))[J.broken] == "failed"


async def test_a_service_with_archiving_off_turns_queueing_off(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    service_env: dict[str, str],
    run_app: AppFactory,
) -> None:
    """A replica left the switch on (archiving was on before): a service started with archiving
    off turns it off, so results are no longer queued and clips keep their Runware URLs."""
    await db.execute("select public.reconciler_set_archiving(true)")
    simulator.add_job(J.plain, duration=0, outcome="success")
    project = await new_project(db, {J.plain: "pending"})

    async with run_app(service_env | ENGINE_ENV) as app:
        assert app.services.archive is None

        async def settled() -> bool:
            return bool((await clips_of(db, project))[J.plain] != "pending")

        await wait_until(settled, timeout=60)

    assert await db.fetchval("select enabled from reconciler.archive_settings") is False
    assert await archive_tasks(db) == {}
    assert (await clips_of(db, project))[J.plain] == simulator.truth()[J.plain]
