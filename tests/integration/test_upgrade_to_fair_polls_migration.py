"""Migrations are append-only: a database on every file before the fair-polls migration, with
jobs tracked under the old rule (any key of 1-255 characters), upgrades with `reconciler
migrate`. Unsettled jobs whose key is not a UUID move to untrackable_clips with today's reason
(the jobs table's check constraint calls the stricter is_trackable), settled ones go, keys
recorded before get today's wording, and the per-project limit is in place at its default."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg

from reconciler.clips import NOT_A_TASK_ID
from reconciler.migrations import apply_migrations, migration_files
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster
from tests.job_ids import J

NEW_FILE = "20261208000000_clip_reconciler_fair_polls.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000081")
LONG_KEY = "k" * 300


async def test_jobs_tracked_under_the_old_rule_are_recorded_as_not_tracked(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        # State under the previous files: "job-1" tracked and leased, "job-2" settled, a UUID
        # tracked, a long key recorded with the old wording.
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps(
                {
                    "job-1": "pending",
                    "job-2": "pending",
                    J.kept: "pending",
                    LONG_KEY: "pending",
                }
            ),
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        await conn.execute(
            "update reconciler.jobs set lease_owner = 'old-replica',"
            " lease_expires_at = now() + interval '1 hour' where job_id = 'job-1'"
        )
        await conn.execute(
            'update public.projects set clips = clips || \'{"job-2": "failed"}\' where id = $1',
            PROJECT,
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        before = await conn.fetch("select job_id, settled_at is null as open from reconciler.jobs")

        applied = await apply_migrations(url)
        again = await apply_migrations(url)

        jobs = await conn.fetch("select job_id from reconciler.jobs")
        recorded = await conn.fetch(
            "select key_prefix, last_error from reconciler.untrackable_clips where project_id = $1",
            PROJECT,
        )
        limit = await conn.fetchval(
            "select max_pending_per_project from reconciler.tracking_settings"
        )
    finally:
        await conn.close()

    assert {(r["job_id"], r["open"]) for r in before} == {
        ("job-1", True),
        ("job-2", False),
        (J.kept, True),
    }
    assert NEW_FILE in applied
    assert again == []
    assert [r["job_id"] for r in jobs] == [J.kept]
    assert {r["key_prefix"]: r["last_error"] for r in recorded} == {
        "job-1": NOT_A_TASK_ID,
        LONG_KEY[:64]: NOT_A_TASK_ID,
    }
    assert limit == 1000
    store = await connect_postgres_store(url)
    try:
        claimed = await store.claim_due_jobs("new-replica", 10, 30, per_project=5)
        stats = await store.pending_stats()
    finally:
        await store.close()
    assert [job.job_id for job in claimed] == [J.kept]
    assert (stats.pending, stats.untrackable) == (1, 2)
