"""Item 7: the app's own BEFORE trigger may add a pending clip in the very statement with which
the reconciler settles another (scene B starts when scene A finishes). The outbox records it
(a key newly "pending", whoever wrote it), so B is tracked and settles like any clip (I5);
our own writes that add no pending clip still leave no outbox row, and the app's writes still
cost one insert without reading the clips."""

from __future__ import annotations

import asyncpg
import pytest

from reconciler.store.postgres import connect_postgres_store
from tests.projects import add_pending_clip, clips_of, tracked_project

SCENE_A = "0b6d3c1e-5a2f-4f8e-9c1d-7e3a2b1c0d01"
SCENE_B = "0b6d3c1e-5a2f-4f8e-9c1d-7e3a2b1c0d02"
URL_A = "https://vm.runware.ai/video/scene-a.mp4"
URL_B = "https://vm.runware.ai/video/scene-b.mp4"

# The app's trigger: when scene A leaves "pending", scene B is started (its job id written
# as "pending") in the same row write.
APP_TRIGGER = f"""
create function public.app_start_next_scene() returns trigger language plpgsql as $$
begin
    if old.clips -> '{SCENE_A}' = '"pending"'::jsonb
       and new.clips -> '{SCENE_A}' is distinct from '"pending"'::jsonb
       and not new.clips ? '{SCENE_B}' then
        new.clips := new.clips || jsonb_build_object('{SCENE_B}', 'pending');
    end if;
    return new;
end;
$$;
create trigger app_start_next_scene before update on public.projects
    for each row execute function public.app_start_next_scene();
"""


@pytest.fixture
async def app_trigger(db: asyncpg.Connection) -> None:
    await db.execute(APP_TRIGGER)


async def _outbox_rows(db: asyncpg.Connection) -> int:
    rows: int = await db.fetchval("select count(*) from reconciler.changed_projects")
    return rows


async def _tracked_unsettled(db: asyncpg.Connection, job_id: str) -> bool:
    tracked: bool = await db.fetchval(
        "select exists (select 1 from reconciler.jobs where job_id = $1 and settled_at is null)",
        job_id,
    )
    return tracked


async def test_a_pending_clip_added_by_an_app_trigger_is_tracked(
    database_url: str, db: asyncpg.Connection, app_trigger: None
) -> None:
    project = await tracked_project(db, {SCENE_A: "pending"})
    store = await connect_postgres_store(database_url)
    try:
        outcome = await store.apply_results(project, {SCENE_A: URL_A})
        assert outcome.changed == {SCENE_A: URL_A}
        assert outcome.clips == {SCENE_A: URL_A, SCENE_B: "pending"}
        assert await _outbox_rows(db) == 1

        drained = await store.drain_changes(100, 0, 0)
        assert (drained.rows, drained.projects) == (1, 1)
        assert await _tracked_unsettled(db, SCENE_B)

        # And B settles like any tracked clip.
        ingested = await store.ingest_result(SCENE_B, URL_B, None, 0)
    finally:
        await store.close()
    assert (ingested.kind.value, ingested.project_ids) == ("applied", (project,))
    assert await clips_of(db, project) == {SCENE_A: URL_A, SCENE_B: URL_B}
    assert not await _tracked_unsettled(db, SCENE_B)


async def test_a_webhook_settling_scene_a_gets_scene_b_tracked(
    database_url: str, db: asyncpg.Connection, app_trigger: None
) -> None:
    project = await tracked_project(db, {SCENE_A: "pending"})
    store = await connect_postgres_store(database_url)
    try:
        await store.ingest_result(SCENE_A, URL_A, None, 0)
        await store.drain_changes(100, 0, 0)
    finally:
        await store.close()
    assert await clips_of(db, project) == {SCENE_A: URL_A, SCENE_B: "pending"}
    assert await _tracked_unsettled(db, SCENE_B)


async def test_our_own_write_that_adds_no_pending_clip_leaves_no_outbox_row(
    database_url: str, db: asyncpg.Connection
) -> None:
    project = await tracked_project(db, {SCENE_A: "pending", SCENE_B: "pending"})
    store = await connect_postgres_store(database_url)
    try:
        await store.apply_results(project, {SCENE_A: URL_A})
    finally:
        await store.close()
    assert await _outbox_rows(db) == 0


async def test_an_app_write_still_costs_one_outbox_row(db: asyncpg.Connection) -> None:
    project = await tracked_project(db, {SCENE_A: "pending"})
    await add_pending_clip(db, project, SCENE_B)
    assert await _outbox_rows(db) == 1
