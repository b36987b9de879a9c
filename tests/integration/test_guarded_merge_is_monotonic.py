"""I1: a clip only moves pending → URL or pending → "failed"; nothing else is ever touched."""

from __future__ import annotations

import asyncpg
import pytest

from reconciler.ports import StoreRejected
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.projects import clips_of, new_project

URL = "https://vm.runware.ai/video/os/x/ws/2/vi/first.mp4"
OTHER_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/second.mp4"


async def _full_row(db: asyncpg.Connection, project_id: object) -> asyncpg.Record:
    row: asyncpg.Record | None = await db.fetchrow(
        "select id, user_id, name, clips, updated_at from public.projects where id = $1",
        project_id,
    )
    assert row is not None
    return row


async def test_url_never_goes_back_to_pending(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j": URL})
    with pytest.raises(StoreRejected):
        await store.apply_results(project, {"j": "pending"})
    assert await clips_of(db, project) == {"j": URL}


async def test_url_never_replaced_by_another_url(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j": URL})
    outcome = await store.apply_results(project, {"j": OTHER_URL})
    assert outcome.changed == {}
    assert await clips_of(db, project) == {"j": URL}


async def test_url_never_replaced_by_failed(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j": URL})
    await store.apply_results(project, {"j": "failed"})
    assert await clips_of(db, project) == {"j": URL}


async def test_failed_never_becomes_url(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j": "failed"})
    outcome = await store.apply_results(project, {"j": URL})
    assert outcome.changed == {}
    assert await clips_of(db, project) == {"j": "failed"}


async def test_removed_key_is_not_re_added(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {J.j: "pending", J.keep: "pending"})
    await db.execute("update public.projects set clips = clips - $2 where id = $1", project, J.j)

    outcome = await store.apply_results(project, {J.j: URL})
    ingested = await store.ingest_result(J.j, URL, None, 0)

    assert outcome.changed == {}
    assert ingested.kind == "parked"  # no project holds it any more
    assert await clips_of(db, project) == {J.keep: "pending"}


async def test_other_keys_columns_and_rows_untouched(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j": "pending", "a": "pending", "b": URL}, name="mine")
    neighbour = await new_project(db, {"j": "pending", "z": "pending"}, name="theirs")
    before_project = await _full_row(db, project)
    before_neighbour = await _full_row(db, neighbour)

    await store.apply_results(project, {"j": OTHER_URL})

    after_project = await _full_row(db, project)
    assert after_project["clips"] == {"j": OTHER_URL, "a": "pending", "b": URL}
    for column in ("id", "user_id", "name", "updated_at"):
        assert after_project[column] == before_project[column]
    assert await _full_row(db, neighbour) == before_neighbour


async def test_pending_moves_to_url_and_to_failed(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"ok": "pending", "bad": "pending"})
    outcome = await store.apply_results(project, {"ok": URL, "bad": "failed"})
    assert outcome.changed == {"ok": URL, "bad": "failed"}
    assert await clips_of(db, project) == {"ok": URL, "bad": "failed"}


async def test_clips_that_are_not_an_object_are_left_alone(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {})
    await db.execute("update public.projects set clips = '[\"pending\"]' where id = $1", project)
    outcome = await store.apply_results(project, {"0": URL})
    assert outcome.changed == {}
    stored = await db.fetchval("select clips from public.projects where id = $1", project)
    assert stored == ["pending"]
