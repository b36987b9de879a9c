"""Migrations are append-only: a database on the files before the operator migration, holding
state of every kind (pending jobs, one mid-poll under a lease, a failure with its reason, a
parked result), upgrades with `reconciler migrate`; the operator's view then shows that state,
a serving replica heartbeats, records Runware's progress, and every clip converges."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.migrations import apply_migrations, migration_files
from reconciler.operator.views import read_overview
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory
from tests.waiting import wait_until

OPERATOR = "20261202200000_clip_reconciler_operator.sql"
URL_EARLY = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/early.mp4"
P1 = UUID("00000000-0000-4000-8000-000000000011")
P2 = UUID("00000000-0000-4000-8000-000000000012")


@pytest.fixture
async def previous_db(pg_cluster: PgCluster) -> str:
    """Supabase's baseline and every migration file before the operator migration."""
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < OPERATOR:
                await conn.execute(path.read_text())
    finally:
        await conn.close()
    return url


async def _load_previous_state(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "insert into public.projects (id, clips) values ($1, $3::text::jsonb),"
        " ($2, $4::text::jsonb)",
        P1,
        P2,
        json.dumps({J.slow: "pending", J.leased: "pending", J.broken: "pending"}),
        json.dumps({J.quick: "pending"}),
    )
    await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
    # A replica of the previous release died mid-poll; another job already failed, with why.
    await conn.execute(
        "update reconciler.jobs set lease_owner = 'crashed-replica',"
        " lease_expires_at = now() + interval '1 hour' where job_id = $1",
        J.leased,
    )
    await conn.execute(
        "select public.reconciler_finish_round('old-replica', $1::text::jsonb)",
        json.dumps(
            [
                {
                    "project_id": str(P1),
                    "job_id": J.broken,
                    "result": "failed",
                    "reason": "Runware: invalid model",
                    "next_check_in_seconds": 0,
                }
            ]
        ),
    )
    await conn.execute(
        # Younger than the give-up age (an hour by default): it stays pending.
        "update reconciler.jobs set first_seen_at = now() - interval '30 minutes'"
        " where job_id = $1",
        J.slow,
    )
    await conn.execute(
        "insert into reconciler.parked_results (job_id, result) values ($2, $1)",
        URL_EARLY,
        J.early,
    )


async def test_previous_database_upgrades_and_the_operator_sees_everything(
    previous_db: str,
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
) -> None:
    conn = await asyncpg.connect(previous_db)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    store = await connect_postgres_store(previous_db)
    try:
        await _load_previous_state(conn)
        applied = await apply_migrations(previous_db)
        again = await apply_migrations(previous_db)

        before = await read_overview(store)

        simulator.add_job(J.slow, duration=3600)  # still working: reports progress
        for job in (J.leased, J.quick):
            simulator.add_job(job, duration=0, outcome="success")
        env = (
            service_env
            | ENGINE_ENV
            | {"DATABASE_URL": previous_db, "RECONCILER_HEARTBEAT_SECONDS": "0.2"}
        )
        async with run_app(env) as app:
            # As time would: the dead replica's lease expires.
            await conn.execute(
                "update reconciler.jobs set lease_expires_at = now() where job_id = $1",
                J.leased,
            )

            async def converged() -> bool:
                clips = await conn.fetchval("select clips from public.projects where id = $1", P2)
                leased = await conn.fetchval(
                    "select clips ->> $2 from public.projects where id = $1", P1, J.leased
                )
                progress = await conn.fetchval(
                    "select progress from reconciler.jobs where job_id = $1", J.slow
                )
                unsettled = await conn.fetchval(
                    "select count(*) from reconciler.jobs where settled_at is null"
                )
                return (
                    clips[J.quick] != "pending"
                    and leased != "pending"
                    and progress is not None
                    and unsettled == 1
                )

            await wait_until(converged, timeout=60)
            during = await read_overview(store)
            owner = app.engine.owner
        after = await read_overview(store)
    finally:
        await store.close()
        await conn.close()

    assert OPERATOR in applied
    assert again == []
    # The state of the previous release, as the operator sees it right after the upgrade.
    assert before.unsettled == 3
    assert {b.label: b.count for b in before.age_buckets}["10-60m"] == 1
    assert before.oldest[0].job_id == J.slow
    assert before.oldest[0].progress is None
    assert [(f.job_id, f.reason) for f in before.failures_24h] == [
        (J.broken, "Runware: invalid model")
    ]
    assert before.parked_results == 1
    assert before.replicas == []
    # A serving replica heartbeats, and the poll round stored Runware's progress.
    assert [(r.owner, r.alive) for r in during.replicas] == [(owner, True)]
    assert during.unsettled == 1
    assert during.oldest[0].job_id == J.slow
    assert during.oldest[0].progress is not None
    # A clean stop removes the replica's row.
    assert after.replicas == []
