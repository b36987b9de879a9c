"""A poll round that outlasts the lease keeps its jobs: the lease is renewed while it runs, so
no other replica takes them over and polls them a second time."""

from __future__ import annotations

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.store.postgres import connect_postgres_store
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory
from tests.projects import new_project
from tests.waiting import wait_until


async def test_leases_are_renewed_while_runware_is_slow(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    simulator.add_job(J.slow_answer, duration=0, outcome="success")
    await new_project(db, {J.slow_answer: "pending"})
    env = service_env | ENGINE_ENV | {"RECONCILER_LEASE_SECONDS": "1.5"}
    other = await connect_postgres_store(database_url)
    try:
        simulator.hold_requests()  # Runware "hangs": the round outlasts the lease
        async with run_app(env) as running:
            await wait_until(lambda: simulator.state.requests_in_flight > 0)
            first_expiry = await db.fetchval(
                "select lease_expires_at from reconciler.jobs where job_id = $1", J.slow_answer
            )

            async def renewed() -> bool:
                expiry = await db.fetchval(
                    "select lease_expires_at from reconciler.jobs where job_id = $1", J.slow_answer
                )
                return bool(expiry > first_expiry)

            async def first_lease_would_have_expired() -> bool:
                return bool(await db.fetchval("select now() > $1", first_expiry))

            await wait_until(renewed)
            await wait_until(first_lease_would_have_expired)
            # Past the original expiry, the job is still not claimable by anyone else.
            assert await other.claim_due_jobs("other-replica", 10, 30) == []
            owner = await db.fetchval(
                "select lease_owner from reconciler.jobs where job_id = $1", J.slow_answer
            )
            assert owner == running.engine.owner
            simulator.release_requests()
            await wait_until(lambda: running.engine.stats.results_written == 1)
    finally:
        simulator.release_requests()
        await other.close()
