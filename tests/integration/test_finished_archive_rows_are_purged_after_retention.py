"""Finished archive rows are forgotten after the retention period, a batch per call, like
settled jobs, also those of deleted projects (issue 18, item 15); rows still waiting, rows
finished recently and a copy some clip still waits for are kept. Both transports."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest

from reconciler.ports import ArchivedObject, StoreRejected
from reconciler.store.functions import FunctionStore
from tests.projects import new_project

PUBLIC = "https://example.supabase.co/storage/v1/object/public/videos/"
SHA = "ef" * 32
DAY = 86400.0


def _url(name: str) -> str:
    return f"https://vm.runware.ai/video/os/{name}/ws/2/vi/{name}.mp4"


async def _counts(db: asyncpg.Connection) -> tuple[int, int]:
    clips = await db.fetchval("select count(*) from reconciler.archive_clips")
    copies = await db.fetchval("select count(*) from reconciler.archive_tasks")
    return int(clips), int(copies)


async def test_finished_rows_past_retention_are_purged_in_batches(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    # Three finished long ago: archived, given up, and one of a project deleted since.
    old = {}
    for name in ("archived", "given-up", "deleted"):
        job = str(uuid4())
        project = await new_project(db, {job: "pending"})
        await store.apply_results(project, {job: _url(name)})
        old[name] = project
    tasks = {t.source_url: t for t in await store.claim_archive_tasks("r", 10, 30, 10)}
    done = tasks[_url("archived")]
    path = f"{done.project_id}/{done.job_id}.mp4"
    await store.archive_succeeded(done, ArchivedObject(path, PUBLIC + path, 1, SHA))
    for name in ("given-up", "deleted"):
        await store.archive_failed(
            tasks[_url(name)], "gone", permanent=True, retry_in_seconds=0, max_attempts=3
        )
    await db.execute("delete from public.projects where id = $1", old["deleted"])
    await db.execute("update reconciler.archive_clips set finished_at = now() - interval '8 days'")
    await db.execute("update reconciler.archive_tasks set finished_at = now() - interval '8 days'")
    # Kept: one still waiting (queued long ago) and one finished an hour ago.
    waiting_job, recent_job = str(uuid4()), str(uuid4())
    recent = await new_project(db, {recent_job: "pending"})
    await store.apply_results(recent, {recent_job: _url("recent")})
    [fresh] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_failed(fresh, "gone", permanent=True, retry_in_seconds=0, max_attempts=3)
    await db.execute(
        "update reconciler.archive_clips set finished_at = now() - interval '1 hour'"
        " where project_id = $1",
        recent,
    )
    waiting = await new_project(db, {waiting_job: "pending"})
    await store.apply_results(waiting, {waiting_job: _url("waiting")})
    await db.execute(
        "update reconciler.archive_tasks set created_at = now() - interval '30 days'"
        " where state = 'queued'"
    )
    assert await _counts(db) == (5, 5)

    first = await store.purge_archive(7 * DAY, 2)
    second = await store.purge_archive(7 * DAY, 2)
    third = await store.purge_archive(7 * DAY, 2)

    assert (first, second, third) == ((2, 2), (1, 1), (0, 0))
    rows = await db.fetch("select project_id, state from reconciler.archive_clips")
    assert {(r["project_id"], r["state"]) for r in rows} == {
        (waiting, "queued"),
        (recent, "given_up"),
    }
    copies = await db.fetch("select source_url from reconciler.archive_tasks")
    assert {r["source_url"] for r in copies} == {_url("waiting"), _url("recent")}


async def test_a_copy_a_clip_still_waits_for_is_kept(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """A clip row queued for a copy that finished (a clip joined during the last moments
    of an upgrade, say) keeps the copy: the purge never strands a waiting clip."""
    await store.set_archiving(True)
    job = str(uuid4())
    project = await new_project(db, {job: "pending"})
    await store.apply_results(project, {job: _url("kept")})
    await db.execute(
        "update reconciler.archive_tasks set state = 'given_up',"
        " finished_at = now() - interval '30 days'"
    )

    assert await store.purge_archive(7 * DAY, 10) == (0, 0)
    assert await _counts(db) == (1, 1)


@pytest.mark.parametrize(("age", "limit"), [(7 * DAY, -1)], ids=["negative-limit"])
async def test_bad_purge_input_is_rejected(store: FunctionStore, age: float, limit: int) -> None:
    with pytest.raises(StoreRejected):
        await store.purge_archive(age, limit)
