"""Migrations are append-only: a database on every file before the dead-rows file, with jobs
due, one leased by a live replica, one whose lease expired and one not due yet, upgrades with
`reconciler migrate` (and takes the file a second time); the new claim then takes exactly the
jobs the old one would have, fairly across projects."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster

NEW_FILE = "20261208050000_clip_reconciler_dead_rows.sql"
BUSY = UUID("00000000-0000-4000-8000-000000000051")
QUIET = UUID("00000000-0000-4000-8000-000000000052")
BUSY_JOBS = [f"5a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5{n:02d}" for n in range(10)]
QUIET_JOB = "5a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f0"
LEASED = BUSY_JOBS[0]
EXPIRED = BUSY_JOBS[1]
NOT_DUE = BUSY_JOBS[2]


async def test_jobs_tracked_before_the_upgrade_are_claimed_as_before(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await conn.executemany(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            [
                (BUSY, json.dumps(dict.fromkeys(BUSY_JOBS, "pending"))),
                (QUIET, json.dumps({QUIET_JOB: "pending"})),
            ],
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        await conn.execute(
            "update reconciler.jobs set lease_owner = 'alive',"
            " lease_expires_at = now() + interval '1 hour' where job_id = $1",
            LEASED,
        )
        await conn.execute(
            "update reconciler.jobs set lease_owner = 'crashed',"
            " lease_expires_at = now() - interval '1 second' where job_id = $1",
            EXPIRED,
        )
        await conn.execute(
            "update reconciler.jobs set next_check_at = now() + interval '1 hour'"
            " where job_id = $1",
            NOT_DUE,
        )

        applied = await apply_migrations(url)
        # Idempotent: `supabase db push` users may run it again.
        await conn.execute((Path(migration_files()[0]).parent / NEW_FILE).read_text())
    finally:
        await conn.close()
    assert NEW_FILE in applied

    store = await connect_postgres_store(url)
    try:
        # Three per project: the quiet project's lone job is in the first round.
        first = await store.claim_due_jobs("replica", 4, 60, per_project=3)
        rest = await store.claim_due_jobs("replica", 100, 60, per_project=100)
        again = await store.claim_due_jobs("other", 100, 60, per_project=100)
    finally:
        await store.close()

    claimable = {job for job in BUSY_JOBS if job not in (LEASED, NOT_DUE)} | {QUIET_JOB}
    assert QUIET_JOB in {job.job_id for job in first}
    assert len(first) == 4
    assert {job.job_id for job in first} | {job.job_id for job in rest} == claimable
    assert len(first) + len(rest) == len(claimable)
    assert again == []
