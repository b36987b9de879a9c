"""A resync page holds the rows of the projects it has reconciled until it commits. A project
row the app keeps locked (a long transaction) must not stall the page — nor, through it, the
app's writes to every project the page already took: the project fails its own step after
the function's lock timeout, is reported as refused, and the rest of the page is reconciled."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import asyncpg

from reconciler.store.functions import FunctionStore
from tests.projects import new_project

# A fail-safe only, never a measure: the page comes back after about the function's lock
# timeout (1 s); without one it would wait for the app's commit, here for ever.
FAIL_SAFE_SECONDS = 30


async def _bypassing_the_trigger(db: asyncpg.Connection, clips: dict[str, str]) -> UUID:
    """A project whose pending clip only a resync can find (written with triggers off)."""
    await db.execute("set session_replication_role = replica")
    try:
        return await new_project(db, clips)
    finally:
        await db.execute("set session_replication_role = origin")


async def test_a_project_the_app_keeps_locked_is_refused_and_the_page_goes_on(
    store: FunctionStore, db: asyncpg.Connection, database_url: str
) -> None:
    locked_job, free_job = str(uuid4()), str(uuid4())
    locked = await _bypassing_the_trigger(db, {locked_job: "pending"})
    free = await _bypassing_the_trigger(db, {free_job: "pending"})
    app = await asyncpg.connect(database_url)
    try:
        async with app.transaction():
            await app.execute("select 1 from public.projects where id = $1 for update", locked)
            page = await asyncio.wait_for(store.resync_page(None, 1000, 0, 0), FAIL_SAFE_SECONDS)
    finally:
        await app.close()

    assert str(locked) in {str(p) for p in page.refused}
    assert "lock timeout" in next(iter(page.refused.values()))
    tracked = await db.fetch(
        "select project_id, job_id from reconciler.jobs where settled_at is null"
    )
    assert {(r["project_id"], r["job_id"]) for r in tracked} == {(free, free_job)}
