"""Each video is copied once, however many clips hold its URL (issue 18, items 4 and 5).

A job id held by several projects gets one copy: one claim, one object, and every clip that
still holds the URL is swapped to it, each swap guarded (a clip the app changed meanwhile is
left alone). A clip set back to "pending" that gets the same URL again is swapped to the
stored object at once, with nothing to claim. A URL whose copy finished without an object is
queued again by new results a bounded number of times. Both transports, a real database."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from reconciler.ports import ArchivedObject, ArchiveTask
from reconciler.store.functions import FunctionStore
from tests.projects import clips_of, new_project, row_version
from tests.waiting import wait_until

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/shared.mp4"
PUBLIC = "https://example.supabase.co/storage/v1/object/public/videos/"
SHA = "cd" * 32


def _archived(task: ArchiveTask) -> ArchivedObject:
    path = f"{task.project_id}/{task.job_id}.mp4"
    return ArchivedObject(path, PUBLIC + path, 4321, SHA)


async def _clip_states(db: asyncpg.Connection) -> dict[UUID, str]:
    rows = await db.fetch("select project_id, state from reconciler.archive_clips")
    return {r["project_id"]: r["state"] for r in rows}


async def _copies(db: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch("select * from reconciler.archive_tasks")]


async def _repend(db: asyncpg.Connection, project: UUID, job: str) -> None:
    """The app sets the clip back to "pending" (to run the job again)."""
    await db.execute(
        "update public.projects set clips = jsonb_set(clips, array[$2], '\"pending\"')"
        " where id = $1",
        project,
        job,
    )


async def test_a_url_held_by_four_projects_is_copied_once_into_every_clip(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    job = str(uuid4())
    projects = [await new_project(db, {job: "pending"}) for _ in range(4)]
    for project in projects:
        await store.apply_results(project, {job: URL})

    claimed = await store.claim_archive_tasks("r", 10, 30, 10)
    assert await store.claim_archive_tasks("other", 10, 30, 10) == []

    assert len(claimed) == 1
    [task] = claimed
    assert (task.project_id, task.job_id, task.source_url) == (projects[0], job, URL)
    # While the one copy runs, the app replaces the clip of the third project.
    await db.execute(
        "update public.projects set clips = jsonb_build_object($2::text, 'mine-now') where id = $1",
        projects[2],
        job,
    )
    left_alone = await row_version(db, projects[2])

    archived = _archived(task)
    assert await store.archive_succeeded(task, archived) == "archived"

    for project in projects:
        expected = "mine-now" if project == projects[2] else archived.archived_url
        assert await clips_of(db, project) == {job: expected}
    assert await row_version(db, projects[2]) == left_alone
    states = await _clip_states(db)
    assert states == {p: "superseded" if p == projects[2] else "archived" for p in projects}
    [copy] = await _copies(db)
    assert (copy["state"], copy["object_path"], copy["attempts"]) == (
        "archived",
        archived.object_path,
        1,
    )


async def test_a_url_already_stored_is_swapped_in_without_a_copy(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """A project that gets the URL after its copy was made is swapped at once."""
    await store.set_archiving(True)
    job = str(uuid4())
    first = await new_project(db, {job: "pending"})
    await store.apply_results(first, {job: URL})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_succeeded(task, _archived(task))

    later = await new_project(db, {job: "pending", "other": "pending"})
    outcome = await store.apply_results(later, {job: URL})

    assert outcome.changed == {job: URL}
    assert await clips_of(db, later) == {job: _archived(task).archived_url, "other": "pending"}
    assert await store.claim_archive_tasks("r", 10, 30, 10) == []
    assert [c["attempts"] for c in await _copies(db)] == [1]


async def test_re_pending_an_archived_clip_three_times_copies_nothing_again(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    await store.set_archiving(True)
    job = str(uuid4())
    project = await new_project(db, {job: "pending"})
    await store.apply_results(project, {job: URL})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_succeeded(task, _archived(task))
    stored = _archived(task).archived_url

    for _ in range(3):
        await _repend(db, project, job)
        await store.apply_results(project, {job: URL})

        assert await clips_of(db, project) == {job: stored}
        assert await store.claim_archive_tasks("r", 10, 30, 10) == []

    [copy] = await _copies(db)
    assert (copy["state"], copy["attempts"], copy["requeues"]) == ("archived", 1, 0)
    assert await _clip_states(db) == {project: "archived"}


async def test_requeues_of_a_url_that_was_given_up_are_bounded(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """Each re-pend of a clip whose video could not be archived (too large, say) may copy it
    again, a bounded number of times; then the clip is given up at once, with the reason."""
    await store.set_archiving(True)
    job = str(uuid4())
    project = await new_project(db, {job: "pending"})
    await store.apply_results(project, {job: URL})
    claims = 0
    for _ in range(5):
        claimed = await store.claim_archive_tasks("r", 10, 30, 10)
        claims += len(claimed)
        for task in claimed:
            assert task.attempts == 1
            await store.archive_failed(
                task, "too large", permanent=True, retry_in_seconds=0, max_attempts=10
            )
        await _repend(db, project, job)
        await store.apply_results(project, {job: URL})

    assert claims == 3  # the first copy and two requeues
    assert await store.claim_archive_tasks("r", 10, 30, 10) == []
    [copy] = await _copies(db)
    assert (copy["state"], copy["requeues"]) == ("given_up", 2)
    row = await db.fetchrow("select state, last_error from reconciler.archive_clips")
    assert row is not None
    assert row["state"] == "given_up"
    assert "queued 3 times already" in row["last_error"]
    assert await clips_of(db, project) == {job: URL}


async def test_two_projects_queueing_one_new_url_at_once_share_the_copy(
    store: FunctionStore, db: asyncpg.Connection, database_url: str
) -> None:
    """One project's result for a URL is not committed yet when another project's result for
    the same URL arrives: the second waits, then joins the first's copy (no error, no second
    copy)."""
    await store.set_archiving(True)
    job = str(uuid4())
    first, second = [await new_project(db, {job: "pending"}) for _ in range(2)]
    writer = await asyncpg.connect(database_url)
    try:
        async with writer.transaction():
            await writer.execute(
                "select public.reconciler_apply_results($1, $2::text::jsonb)",
                first,
                json.dumps({job: URL}),
            )
            joining = asyncio.create_task(store.apply_results(second, {job: URL}))

            async def waits_for_the_first() -> bool:
                waiting = await db.fetchval(
                    "select count(*) from pg_stat_activity"
                    " where wait_event_type = 'Lock' and datname = current_database()"
                )
                return bool(waiting)

            await wait_until(waits_for_the_first)
        outcome = await joining
    finally:
        await writer.close()

    assert outcome.changed == {job: URL}
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    assert task.project_id == first
    assert await store.archive_succeeded(task, _archived(task)) == "archived"
    for project in (first, second):
        assert await clips_of(db, project) == {job: _archived(task).archived_url}


async def test_a_clip_given_another_url_never_overwrites_the_object_its_path_names(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """The object path is the first clip's: if that clip later gets a different URL, copying
    it to the same path would replace the video every other clip holding the object shows.
    The new URL's clip is given up with the reason; the stored object and its clips stay."""
    await store.set_archiving(True)
    job = str(uuid4())
    owner, sharer = [await new_project(db, {job: "pending"}) for _ in range(2)]
    for project in (owner, sharer):
        await store.apply_results(project, {job: URL})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_succeeded(task, _archived(task))
    other_url = URL.replace("shared", "different")

    await _repend(db, owner, job)
    await store.apply_results(owner, {job: other_url})

    assert await store.claim_archive_tasks("r", 10, 30, 10) == []
    assert await clips_of(db, owner) == {job: other_url}
    assert await clips_of(db, sharer) == {job: _archived(task).archived_url}
    row = await db.fetchrow(
        "select state, source_url, last_error from reconciler.archive_clips where project_id = $1",
        owner,
    )
    assert row is not None
    assert (row["state"], row["source_url"]) == ("given_up", other_url)
    assert "object path already names the copy of another URL" in row["last_error"]
    assert [c["source_url"] for c in await _copies(db)] == [URL]


async def test_the_backfill_swaps_a_clip_whose_url_is_stored_already(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """A clip written before archiving was on, holding a URL another project's clip had
    archived since: the back-fill swaps it to the object, with nothing to copy."""
    job = str(uuid4())
    older = await new_project(db, {job: URL})
    await store.set_archiving(True)
    newer = await new_project(db, {job: "pending"})
    await store.apply_results(newer, {job: URL})
    [task] = await store.claim_archive_tasks("r", 10, 30, 10)
    await store.archive_succeeded(task, _archived(task))

    page = await store.archive_backfill_page(None, 10, ["https://vm.runware.ai/"], PUBLIC)

    assert page.queued == 1
    assert await clips_of(db, older) == {job: _archived(task).archived_url}
    assert await store.claim_archive_tasks("r", 10, 30, 10) == []
    assert await _clip_states(db) == {older: "archived", newer: "archived"}
