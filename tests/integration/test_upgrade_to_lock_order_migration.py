"""Migrations are append-only: a database on every file before the lock-order file, with jobs
tracked, an app write not drained yet and a poller's lease held, upgrades with `reconciler
migrate` (and takes the file a second time); afterwards that state is worked as before, in the
new order."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from reconciler.ports import PollOutcome
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster

NEW_FILE = "20261208010000_clip_reconciler_lock_order.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000041")
TRACKED = "3a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f1"
POLLED = "3a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f2"
NOT_DRAINED = "3a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f3"
OWNER = "replica-before-upgrade"


def _url(job_id: str) -> str:
    return f"https://vm.runware.ai/video/{job_id}.mp4"


async def test_state_written_before_the_upgrade_is_worked_after_it(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps({TRACKED: "pending", POLLED: "pending"}),
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        await conn.execute(
            "update reconciler.jobs set lease_owner = $1,"
            " lease_expires_at = now() + interval '1 hour' where job_id = $2",
            OWNER,
            POLLED,
        )
        await conn.execute(
            "update public.projects set clips = clips || $2::text::jsonb where id = $1",
            PROJECT,
            json.dumps({NOT_DRAINED: "pending"}),
        )

        applied = await apply_migrations(url)
        # Idempotent: `supabase db push` users may run it again.
        await conn.execute((Path(migration_files()[0]).parent / NEW_FILE).read_text())
    finally:
        await conn.close()
    assert NEW_FILE in applied

    store = await connect_postgres_store(url)
    try:
        webhook = await store.ingest_result(NOT_DRAINED, _url(NOT_DRAINED), None, 0)
        tracked = await store.ingest_result(TRACKED, _url(TRACKED), None, 0)
        round_outcome = await store.finish_round(
            OWNER,
            [
                PollOutcome(
                    project_id=PROJECT,
                    job_id=POLLED,
                    result=_url(POLLED),
                    reason=None,
                    next_check_in_seconds=5.0,
                    progress=None,
                )
            ],
        )
        drained = await store.drain_changes(100, 0, 0)
    finally:
        await store.close()

    assert (webhook.kind.value, webhook.project_ids) == ("applied", (PROJECT,))
    assert (tracked.kind.value, tracked.project_ids) == ("applied", (PROJECT,))
    assert round_outcome.changed == {PROJECT: {POLLED: _url(POLLED)}}
    assert drained.refused == {}
    conn = await asyncpg.connect(url)
    try:
        clips = json.loads(
            await conn.fetchval("select clips::text from public.projects where id = $1", PROJECT)
        )
        unsettled = await conn.fetchval(
            "select count(*) from reconciler.jobs where settled_at is null"
        )
    finally:
        await conn.close()
    assert clips == {job: _url(job) for job in (TRACKED, POLLED, NOT_DRAINED)}
    assert unsettled == 0
