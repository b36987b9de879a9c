"""I9: nothing of ours can make the app's write fail or wait — keys of any length, clips of any
JSON shape, our own tables locked by a long sweep — and nothing of ours stalls on such data:
the drain, sweeps and the check endpoint go on, and a key too long to be a Runware task id is
recorded as not trackable and reported."""

from __future__ import annotations

import json
import random
import string
from uuid import UUID

import asyncpg
import httpx
import pytest

from reconciler.clips import untrackable_reason
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import clips_of, new_project

LENGTHS = {"3KB": 3_000, "100KB": 100_000, "1MB": 1_000_000}


def _key(length: int) -> str:
    # Incompressible: a repetitive key would be compressed and hide any size limit.
    rng = random.Random(length)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


@pytest.mark.parametrize("size", list(LENGTHS))
@pytest.mark.parametrize("role", ["postgres", "service_role", "authenticated"])
async def test_the_app_writes_keys_of_any_length(
    db: asyncpg.Connection, store: FunctionStore, size: str, role: str
) -> None:
    long_key = _key(LENGTHS[size])
    project = await new_project(db, {J.short: "pending"})
    # The test app's RLS lets a user write only their own rows (tested elsewhere); here the
    # question is only whether anything of ours gets in the way.
    await db.execute("alter table public.projects disable row level security")
    async with db.transaction():
        if role != "postgres":
            await db.execute(f"set local role {role}")
        await db.execute("insert into public.projects (clips) values ($1)", {long_key: "pending"})
        updated = await db.execute(
            "update public.projects set clips = clips || $1 where id = $2",
            {long_key: "pending"},
            project,
        )
    assert updated == "UPDATE 1"

    drained = await store.drain_changes(100, 0, 0)
    swept = await store.projects_with_pending(None, 100)
    snapshot = await store.sync_project(project, 0)

    assert drained.refused == {}
    assert swept == [project]  # only the short key is tracked
    assert snapshot is not None
    assert set(snapshot.pending_jobs) == {J.short}
    assert snapshot.untrackable == {long_key[:64]: len(long_key)}
    stats = await store.pending_stats()
    assert (stats.pending, stats.untrackable) == (1, 2)
    recorded = await db.fetchval(
        "select last_error from reconciler.untrackable_clips where project_id = $1", project
    )
    assert recorded == untrackable_reason(long_key)  # the same words as the check endpoint's


@pytest.mark.parametrize(
    "clips",
    ["null", "[]", '["pending"]', '"pending"', "42", "true", '{"a": {"nested": "pending"}}'],
)
async def test_the_app_writes_clips_of_any_shape(
    db: asyncpg.Connection, store: FunctionStore, clips: str
) -> None:
    # The test schema says `not null`; an app's may not.
    await db.execute("alter table public.projects alter column clips drop not null")
    project = await new_project(db, {"a": "pending"})
    inserted = await db.fetchval(
        "insert into public.projects (clips) values ($1::text::jsonb) returning id", clips
    )
    await db.execute(
        "update public.projects set clips = $1::text::jsonb where id = $2", clips, project
    )

    drained = await store.drain_changes(100, 0, 0)

    assert drained.refused == {}
    assert drained.projects == 2
    for each in (project, inserted):
        snapshot = await store.sync_project(each, 0)
        assert snapshot is not None
        assert snapshot.pending_jobs == {}
    # The job the app removed by replacing the clips is settled, not polled forever.
    assert await store.projects_with_pending(None, 10) == []


async def test_the_app_never_waits_for_our_locks(
    db: asyncpg.Connection, store: FunctionStore, database_url: str
) -> None:
    project = await new_project(db, {J.a: "pending"})
    await store.drain_changes(100, 0, 0)
    await db.execute(
        "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
        " where id = $1",
        project,
        J.b,
    )
    sweep = await asyncpg.connect(database_url)
    app = await asyncpg.connect(database_url)
    try:
        # A long sweep: row locks on every job and on the outbox rows it is draining.
        sweep_tx = sweep.transaction()
        await sweep_tx.start()
        await sweep.execute("select * from reconciler.jobs for update")
        await sweep.execute("delete from reconciler.changed_projects")
        # Waiting for any lock fails at once instead of hanging: a wait would show as an error.
        await app.execute("set lock_timeout = '1ms'")
        await app.execute(
            "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
            " where id = $1",
            project,
            J.c,
        )
        await app.execute(
            'insert into public.projects (clips) values (\'{"d": "pending"}\'::jsonb)'
        )
        await app.execute("update public.projects set name = 'renamed' where id = $1", project)
        await sweep_tx.rollback()
    finally:
        await sweep.close()
        await app.close()

    await store.drain_changes(100, 0, 0)
    snapshot = await store.sync_project(project, 0)
    assert snapshot is not None
    assert set(snapshot.pending_jobs) == {J.a, J.b, J.c}


async def test_the_check_endpoint_reports_a_key_too_long_to_track(
    service: RunningService, db: asyncpg.Connection
) -> None:
    long_key = _key(3_000)
    project: UUID = await new_project(db, {long_key: "pending"})
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        response = await client.post(
            "/check-clips-status", json={"project_id": str(project)}, headers=service.headers()
        )
    assert response.status_code == 200
    body = response.json()
    assert body["pending"] == 1
    [detail] = body["details"]
    assert detail["status"] == "error"
    assert detail["error"] == "job id is not a Runware task id (a UUID); it is not tracked"
    assert await clips_of(db, project) == {long_key: "pending"}
    assert json.dumps(body).count(long_key) == 2  # the clips map and the detail's jobId
