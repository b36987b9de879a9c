"""The lock order (docs/architecture.md, "Lock order") says a project's job rows are written only
while its row is held. Every path that tracks or settles jobs outside the drain — a check, a
sweep or a hint (reconciler_read_project), a user's lean check (reconciler_read_for_check),
the check's follow-up (reconciler_track_jobs) — must therefore hold the row by the time it
writes them; else it can meet a webhook that holds the row and waits for those very job rows.
This also makes the per-project tracking limit exact: two tracking calls for one project take
turns."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import pytest

from tests.projects import new_project

CALLS = {
    "read_project": "select public.reconciler_read_project($1, 0, 0, true)",
    "read_for_check": "select public.reconciler_read_for_check($1, 0, 1, null)",
    "track_jobs": "select public.reconciler_track_jobs($1, $2::text[], 0)",
}


async def _row_is_held(db: asyncpg.Connection, project: UUID) -> bool:
    try:
        await db.execute("select 1 from public.projects where id = $1 for update nowait", project)
    except asyncpg.LockNotAvailableError:
        return True
    return False


@pytest.mark.parametrize("call", list(CALLS))
async def test_a_tracking_call_holds_the_project_row_until_it_commits(
    db: asyncpg.Connection, database_url: str, call: str
) -> None:
    jobs = [str(uuid4()) for _ in range(3)]
    project = await new_project(db, dict.fromkeys(jobs, "pending"))
    caller = await asyncpg.connect(database_url)
    try:
        async with caller.transaction():
            args: tuple[object, ...] = (project, jobs) if call == "track_jobs" else (project,)
            await caller.execute(CALLS[call], *args)
            held_inside = await _row_is_held(db, project)
        held_after = await _row_is_held(db, project)
        tracked = await db.fetchval(
            "select count(*) from reconciler.jobs where project_id = $1 and settled_at is null",
            project,
        )
    finally:
        await caller.close()

    assert held_inside, f"{call} wrote job rows without holding the project's row"
    assert not held_after
    assert tracked == len(jobs)
