"""The archive queue's store operations, on both transports against a real database.

Every URL the reconciler writes while archiving is on gets its task in the same transaction,
whichever path wrote it (guarded merge, webhook, poll round, parked result); tasks are leased;
finishing swaps the clip only when it still holds exactly the archived URL (I1)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest

from reconciler.ports import ArchivedObject, ArchiveTask, PollOutcome, StoreRejected
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.projects import clips_of, new_project, row_version, tracked_project

URL_A = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"
URL_B = "https://vm.runware.ai/video/os/b/ws/2/vi/b.mp4"
URL_C = "https://vm.runware.ai/video/os/c/ws/2/vi/c.mp4"
PUBLIC = "https://example.supabase.co/storage/v1/object/public/videos/"
SHA = "ab" * 32
SOURCES = ["https://vm.runware.ai/"]
APP_URL = "https://cdn.example.com/mine.mp4"


def _archived(task: ArchiveTask) -> ArchivedObject:
    path = f"{task.project_id}/{task.job_id}.mp4"
    return ArchivedObject(path, PUBLIC + path, 1234, SHA)


async def _tasks(db: asyncpg.Connection) -> dict[tuple[UUID, str], dict[str, Any]]:
    rows = await db.fetch("select * from reconciler.archive_tasks")
    return {(r["project_id"], r["job_id"]): dict(r) for r in rows}


async def _clips(db: asyncpg.Connection) -> dict[tuple[UUID, str], dict[str, Any]]:
    """Each clip's row: the URL it waits for (or waited for) and what became of it."""
    rows = await db.fetch("select * from reconciler.archive_clips")
    return {(r["project_id"], r["job_id"]): dict(r) for r in rows}


async def _queued(db: asyncpg.Connection) -> set[tuple[UUID, str, str]]:
    """The clips waiting for a copy (one copy per URL, see _tasks)."""
    rows = await db.fetch(
        "select project_id, job_id, source_url from reconciler.archive_clips where state = 'queued'"
    )
    return {(r["project_id"], r["job_id"], r["source_url"]) for r in rows}


async def test_nothing_is_queued_while_archiving_is_off(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.j1: "pending"})

    await store.apply_results(project, {J.j1: URL_A})

    assert await _tasks(db) == {}
    assert (await store.archive_stats()).enabled is False


async def test_every_write_path_queues_its_urls_when_on(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    assert await store.set_archiving(True) == 0
    merged = await new_project(db, {J.m: "pending", J.f: "pending", J.kept: URL_B})
    hooked = await tracked_project(db, {J.w: "pending"})
    polled = await tracked_project(db, {J.p: "pending"})

    await store.apply_results(merged, {J.m: URL_A, J.f: "failed", J.kept: URL_A})
    await store.ingest_result(J.w, URL_A, None, 0)
    await store.ingest_result(J.parked, URL_B, None, 0)
    parked = await new_project(db, {J.parked: "pending"})
    await store.sync_project(parked, 0)
    claimed = await store.claim_due_jobs("poller", 10, 30)
    assert [j.job_id for j in claimed] == [J.p]
    await store.finish_round("poller", [PollOutcome(polled, J.p, URL_B, None, 0)])

    assert await _queued(db) == {
        (merged, J.m, URL_A),
        (hooked, J.w, URL_A),
        (parked, J.parked, URL_B),
        (polled, J.p, URL_B),
    }
    # Two URLs: two copies to make, whatever the number of clips holding them.
    stats = await store.archive_stats(by_state=True)
    assert (stats.enabled, stats.backlog) == (True, 2)
    assert stats.by_state == {"queued": 2, "archived": 0, "given_up": 0, "superseded": 0}
    assert stats.oldest_age_seconds >= 0


async def test_turning_archiving_off_stops_queueing(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j1: "pending", J.j2: "pending"})
    await store.apply_results(project, {J.j1: URL_A})

    assert await store.set_archiving(False) == 1
    await store.apply_results(project, {J.j2: URL_B})

    assert await _queued(db) == {(project, J.j1, URL_A)}


async def test_claims_are_leased_and_expired_leases_come_back(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.a: "pending", J.b: "pending", J.c: "pending"})
    await store.apply_results(project, {J.a: URL_A, J.b: URL_B, J.c: URL_C})

    mine = await store.claim_archive_tasks("replica-a", 2, 30, 10)
    theirs = await store.claim_archive_tasks("replica-b", 10, 30, 10)
    assert len(mine) == 2
    assert {t.job_id for t in theirs} == {J.a, J.b, J.c} - {t.job_id for t in mine}
    assert await store.claim_archive_tasks("replica-c", 10, 30, 10) == []
    assert await store.renew_archive_leases("replica-a", 60) == 2

    # replica-a is killed: its leases expire and another replica takes the tasks over.
    await db.execute(
        "update reconciler.archive_tasks set lease_until = now() - interval '1 second'"
        " where lease_owner = 'replica-a'"
    )
    taken = await store.claim_archive_tasks("replica-c", 10, 30, 10)

    assert {t.job_id for t in taken} == {t.job_id for t in mine}
    assert all(t.attempts == 2 for t in taken)
    assert {t.source_url for t in mine + theirs} == {URL_A, URL_B, URL_C}


async def test_a_clean_stop_hands_tasks_back_without_counting_the_attempt(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.a: "pending"})
    await store.apply_results(project, {J.a: URL_A})
    [claimed] = await store.claim_archive_tasks("stopping", 10, 300, 10)

    released = await store.release_archive_leases("stopping")
    [again] = await store.claim_archive_tasks("next", 10, 300, 10)

    assert (released, claimed.attempts, again.attempts) == (1, 1, 1)


async def test_a_copy_that_never_finishes_is_given_up_after_its_attempts(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """Each claim counts: a video whose copy kills the process every time ends given up."""
    await store.set_archiving(True)
    project = await new_project(db, {J.poison: "pending"})
    await store.apply_results(project, {J.poison: URL_A})
    for _ in range(3):
        assert len(await store.claim_archive_tasks("doomed", 10, 30, 3)) == 1
        await db.execute("update reconciler.archive_tasks set lease_until = now()")

    assert await store.claim_archive_tasks("doomed", 10, 30, 3) == []

    row = (await _tasks(db))[(project, J.poison)]
    assert row["state"] == "given_up"
    assert "gave up after 3 attempts that never finished" in row["last_error"]
    assert await clips_of(db, project) == {J.poison: URL_A}


async def test_success_swaps_exactly_that_url(store: FunctionStore, db: asyncpg.Connection) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j1: "pending", J.other: "pending", J.x: URL_B})
    await store.apply_results(project, {J.j1: URL_A})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)

    state = await store.archive_succeeded(task, _archived(task))
    again = await store.archive_succeeded(task, _archived(task))

    assert (state, again) == ("archived", "not_queued")
    assert await clips_of(db, project) == {
        J.j1: PUBLIC + f"{project}/{J.j1}.mp4",
        J.other: "pending",
        J.x: URL_B,
    }
    row = (await _tasks(db))[(project, J.j1)]
    assert (row["state"], row["source_url"], row["size_bytes"], row["sha256"]) == (
        "archived",
        URL_A,
        1234,
        SHA,
    )
    assert row["lease_owner"] is None
    assert row["finished_at"] is not None
    # The swap is ours: no outbox row, so no reconcile is triggered by it.
    assert await db.fetchval("select count(*) from reconciler.changed_projects") == 1


async def test_a_clip_the_app_changed_is_never_overwritten(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j1: "pending", J.j2: "pending"})
    await store.apply_results(project, {J.j1: URL_A, J.j2: URL_B})
    tasks = {t.job_id: t for t in await store.claim_archive_tasks("r", 10, 30, 10)}
    # While the copies run, the app replaces one clip and removes the other.
    await db.execute(
        "update public.projects set clips = jsonb_build_object($2::text, 'mine-now') where id = $1",
        project,
        J.j1,
    )
    before = await row_version(db, project)

    states = [await store.archive_succeeded(tasks[j], _archived(tasks[j])) for j in (J.j1, J.j2)]

    assert states == ["superseded", "superseded"]
    assert await clips_of(db, project) == {J.j1: "mine-now"}
    assert await row_version(db, project) == before
    rows = await _tasks(db)
    assert rows[(project, J.j1)]["source_url"] == URL_A
    assert rows[(project, J.j1)]["object_path"] == f"{project}/{J.j1}.mp4"


async def test_claim_skips_tasks_whose_clip_changed(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j1: "pending", J.j2: "pending"})
    gone = await new_project(db, {J.g: "pending"})
    await store.apply_results(project, {J.j1: URL_A, J.j2: URL_B})
    await store.apply_results(gone, {J.g: URL_A})
    await db.execute("update public.projects set clips = clips - $2 where id = $1", project, J.j2)
    await db.execute("delete from public.projects where id = $1", gone)

    claimed = await store.claim_archive_tasks("r", 10, 30, 10)

    assert [t.job_id for t in claimed] == [J.j1]
    clips = await _clips(db)
    assert clips[(project, J.j2)]["state"] == "superseded"
    assert clips[(gone, J.g)]["state"] == "superseded"
    assert clips[(project, J.j1)]["state"] == "queued"
    copies = {row["source_url"]: row for row in (await _tasks(db)).values()}
    assert copies[URL_B]["state"] == "superseded"


async def test_failures_retry_then_give_up_and_the_clip_keeps_its_url(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.t: "pending", J.p: "pending"})
    await store.apply_results(project, {J.t: URL_A, J.p: URL_B})
    tasks = {t.job_id: t for t in await store.claim_archive_tasks("r", 10, 30, 10)}

    retry = await store.archive_failed(
        tasks[J.t], "Storage answered 503", permanent=False, retry_in_seconds=60, max_attempts=3
    )
    gone = await store.archive_failed(
        tasks[J.p], "source gone (404)", permanent=True, retry_in_seconds=60, max_attempts=3
    )

    assert (retry, gone) == ("queued", "given_up")
    assert await store.claim_archive_tasks("r", 10, 30, 10) == []  # not due for a minute
    rows = await _tasks(db)
    assert rows[(project, J.t)]["last_error"] == "Storage answered 503"
    assert rows[(project, J.p)]["last_error"] == "source gone (404)"
    assert await clips_of(db, project) == {J.t: URL_A, J.p: URL_B}

    # Attempts run out: given up, with the reason.
    await db.execute("update reconciler.archive_tasks set next_attempt_at = now()")
    for _ in range(2):
        [task] = await store.claim_archive_tasks("r", 10, 30, 10)
        last = await store.archive_failed(
            task, "download cut", permanent=False, retry_in_seconds=0, max_attempts=3
        )
    assert last == "given_up"
    assert (await _tasks(db))[(project, J.t)][
        "last_error"
    ] == "gave up after 3 attempts: download cut"
    assert await clips_of(db, project) == {J.t: URL_A, J.p: URL_B}
    assert (await store.archive_stats(by_state=True)).by_state["given_up"] == 2
    assert (await store.archive_stats()).by_state == {}  # metrics: O(backlog) only


async def test_a_new_result_for_the_clip_queues_it_again(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j1: "pending"})
    await store.apply_results(project, {J.j1: URL_A})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_failed(task, "gone", permanent=True, retry_in_seconds=0, max_attempts=3)
    # The app re-runs the job: pending again, then a new result.
    await db.execute(
        "update public.projects set clips = jsonb_build_object($2::text, 'pending') where id = $1",
        project,
        J.j1,
    )
    await store.apply_results(project, {J.j1: URL_B})

    [again] = await store.claim_archive_tasks("r", 10, 30, 10)

    assert (again.source_url, again.attempts) == (URL_B, 1)
    # A finish for the old URL is refused: the task is for the new one now.
    assert await store.archive_succeeded(task, _archived(task)) == "not_queued"
    assert await clips_of(db, project) == {J.j1: URL_B}


async def test_backfill_queues_existing_urls_page_by_page(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    projects = sorted(
        [
            await new_project(db, {J.a: URL_A, J.f: "failed", J.p: "pending"}),
            await new_project(db, {J.b: URL_B, J.done: PUBLIC + "x/done.mp4"}),
            await new_project(db, {J.n: 42, J.s: "not a url"}),
            await new_project(db, []),  # type: ignore[arg-type]
            await new_project(db, {J.c: URL_A.upper().replace("HTTPS", "https"), J.own: APP_URL}),
        ]
    )

    first = await store.archive_backfill_page(None, 2, SOURCES, PUBLIC)
    second = await store.archive_backfill_page(first.last, 2, SOURCES, PUBLIC)
    third = await store.archive_backfill_page(second.last, 2, SOURCES, PUBLIC)
    again = await store.archive_backfill_page(None, 10, SOURCES, PUBLIC)

    assert (first.scanned, second.scanned, third.scanned) == (2, 2, 1)
    assert (first.last, second.last, third.last) == (projects[1], projects[3], None)
    assert first.queued + second.queued + third.queued == 3
    # Runware's URLs (its host in any case); not the app's own, not the archived ones.
    assert {(job, url) for _, job, url in await _queued(db)} == {
        (J.a, URL_A),
        (J.b, URL_B),
        (J.c, URL_A.upper().replace("HTTPS", "https")),
    }
    assert again.queued == 0  # already queued: nothing new


async def test_backfill_leaves_given_up_tasks_alone(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.a: URL_A})
    await store.archive_backfill_page(None, 10, SOURCES, PUBLIC)
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_failed(
        task, "too large", permanent=True, retry_in_seconds=0, max_attempts=3
    )

    page = await store.archive_backfill_page(None, 10, SOURCES, PUBLIC)

    assert page.queued == 0
    assert (await _tasks(db))[(project, J.a)]["state"] == "given_up"


@pytest.mark.parametrize(
    "archived",
    [
        ArchivedObject("p/j.mp4", "not-a-url", 1, SHA),
        ArchivedObject("", PUBLIC + "p/j.mp4", 1, SHA),
        ArchivedObject("p/j.mp4", PUBLIC + "p/j.mp4", -1, SHA),
        ArchivedObject("p/j.mp4", PUBLIC + "p/j.mp4", 1, "not-hex"),
    ],
    ids=["url", "path", "size", "sha256"],
)
async def test_bad_finish_input_is_rejected_and_writes_nothing(
    store: FunctionStore, db: asyncpg.Connection, archived: ArchivedObject
) -> None:
    await store.set_archiving(True)
    project = await new_project(db, {J.j: "pending"})
    await store.apply_results(project, {J.j: URL_A})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    before = await row_version(db, project)

    with pytest.raises(StoreRejected):
        await store.archive_succeeded(task, archived)

    assert await row_version(db, project) == before
    assert (await _tasks(db))[(project, J.j)]["state"] == "queued"


async def test_bad_claim_and_backfill_input_is_rejected(store: FunctionStore) -> None:
    with pytest.raises(StoreRejected):
        await store.claim_archive_tasks("", 10, 30, 10)
    with pytest.raises(StoreRejected):
        await store.archive_backfill_page(None, 10, SOURCES, "ftp://nope/")
    for sources in ([], ["vm.runware.ai"], ["https://vm.runware.ai/video/"]):
        with pytest.raises(StoreRejected):
            await store.archive_backfill_page(None, 10, sources, PUBLIC)
