"""Migrations are append-only: a database on every file before the bounded-resync file upgrades
with `reconciler migrate` (and takes the file a second time); afterwards its resync pages carry
their lock timeout, and a pending clip written before the upgrade behind the trigger's back is
still found by a resync."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from tests.databases import PgCluster

NEW_FILE = "20261208060000_clip_reconciler_bounded_resync.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000061")
JOB = "6a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f1"
SIGNATURE = "public.reconciler_resync_page(uuid, integer, double precision, double precision)"


async def test_resync_pages_are_bounded_after_the_upgrade(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await conn.execute("set session_replication_role = replica")
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps({JOB: "pending"}),
        )
        await conn.execute("set session_replication_role = origin")

        first = await apply_migrations(url)
        await conn.execute(
            (migration_files()[-1].parent / NEW_FILE).read_text()
        )  # a second time: idempotent
        config = await conn.fetchval(
            "select proconfig from pg_proc where oid = $1::text::regprocedure", SIGNATURE
        )
        page = json.loads(
            await conn.fetchval("select public.reconciler_resync_page(null, 100, 0, 0)::text")
        )
        tracked = await conn.fetchval(
            "select count(*) from reconciler.jobs where project_id = $1 and job_id = $2",
            PROJECT,
            JOB,
        )
    finally:
        await conn.close()

    assert NEW_FILE in first
    assert "lock_timeout=1s" in config
    assert page["refused"] == {}
    assert tracked == 1
