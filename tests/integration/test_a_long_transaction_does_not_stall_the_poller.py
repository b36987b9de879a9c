"""An app transaction left open holds back vacuum: every job the reconciler settles and purges
meanwhile stays in the table as dead rows, with entries in the due index. A claim then reads
about as much as without them (issue 19, item 5).

The claim used to read the due rows twice and, with statistics from before the churn (as
until autovacuum comes round), by a plain index scan: one heap fetch per dead entry, six times
the buffers of a claim without them here (54,000 against 9,000). Measured in buffers (EXPLAIN
ANALYZE, BUFFERS), a count that does not depend on the machine's speed or load.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg

PROJECTS = 100
JOBS_PER_PROJECT = 5
CHURNED_JOBS = 20_000
CLAIM = "select public.reconciler_claim_due_jobs('poller', 1000, 60, 50)"


async def _buffers_and_rows(conn: asyncpg.Connection, sql: str) -> tuple[int, int]:
    """Buffers one call reads or writes, and how many jobs it claimed; nothing kept."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        plan: Any = json.loads(
            await conn.fetchval(f"explain (analyze, buffers, format json) {sql}")
        )[0]
        claimed = await conn.fetchval(
            "select count(*) from reconciler.jobs where lease_owner = 'poller'"
        )
    finally:
        await transaction.rollback()
    top = plan["Plan"]
    return int(top["Shared Hit Blocks"]) + int(top["Shared Read Blocks"]), int(claimed)


async def _track_due_jobs(db: asyncpg.Connection) -> None:
    projects: list[tuple[UUID, str]] = [
        (uuid4(), json.dumps({str(uuid4()): "pending" for _ in range(JOBS_PER_PROJECT)}))
        for _ in range(PROJECTS)
    ]
    await db.executemany(
        "insert into public.projects (id, clips) values ($1, $2::text::jsonb)", projects
    )
    await db.execute("select public.reconciler_drain_changes(1000, 0, 0)")


async def _churn_jobs_under(holder: asyncpg.Connection, db: asyncpg.Connection) -> None:
    """Jobs tracked, claimed, settled and purged while `holder` keeps a transaction open."""
    await holder.execute("begin")
    await holder.fetchval("select pg_current_xact_id()")
    await db.execute(
        "insert into reconciler.jobs (project_id, job_id, next_check_at)"
        " select gen_random_uuid(), gen_random_uuid()::text, now() - interval '1 minute'"
        "   from generate_series(1, $1)",
        CHURNED_JOBS,
    )
    await db.execute(
        "update reconciler.jobs set lease_owner = 'churn',"
        " lease_expires_at = now() + interval '1 minute' where lease_owner is null"
        " and project_id not in (select id from public.projects)"
    )
    await db.execute(
        "update reconciler.jobs set settled_at = now(), outcome = 'failed',"
        " lease_owner = null, lease_expires_at = null where lease_owner = 'churn'"
    )
    purged = json.loads(
        await db.fetchval("select public.reconciler_purge(0, $1)::text", CHURNED_JOBS)
    )
    assert purged["jobs"] == CHURNED_JOBS


async def test_dead_job_rows_held_by_an_open_transaction_barely_cost_a_claim(
    db: asyncpg.Connection, database_url: str
) -> None:
    # Statistics stay those of the live rows, as until autovacuum comes round.
    await db.execute("alter table reconciler.jobs set (autovacuum_enabled = false)")
    await _track_due_jobs(db)
    await db.execute("vacuum analyze reconciler.jobs")
    before, claimed_before = await _buffers_and_rows(db, CLAIM)

    holder = await asyncpg.connect(database_url)
    try:
        await _churn_jobs_under(holder, db)
        after, claimed_after = await _buffers_and_rows(db, CLAIM)
    finally:
        await holder.close()

    assert claimed_before == claimed_after == PROJECTS * JOBS_PER_PROJECT
    assert after < 2 * before, (before, after)
