"""A lease renewal the database refuses is logged, counted and tried again at the next tick: it
never stops the renewer and never replaces the poll round's own outcome.

Before: a "rejected" error killed the renewer task silently, and its exception surfaced when the
round ended, so a round that had written its results reported a failure."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.engine import Engine, EnginePolicy
from reconciler.local.simulator import RunwareSimulator
from reconciler.ports import StoreRejected
from reconciler.runware.client import RunwareClient
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store
from tests.job_ids import J
from tests.projects import clips_of, new_project
from tests.waiting import wait_until

REFUSALS = 2


async def test_refused_renewals_are_retried_and_the_round_still_succeeds(
    database_url: str,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulator.add_job(J.slow_answer, duration=0, outcome="success")
    project = await new_project(db, {J.slow_answer: "pending"})
    store: FunctionStore = await connect_postgres_store(database_url)
    runware = RunwareClient(simulator.url, simulator.config.api_key, max_retries=0)
    renewals: list[str] = []
    real_renew = store.renew_leases

    async def refuse_then_renew(owner: str, lease_seconds: float) -> int:
        if len(renewals) < REFUSALS:
            renewals.append("refused")
            raise StoreRejected("renewal refused by a test")
        renewals.append("renewed")
        return await real_renew(owner, lease_seconds)

    monkeypatch.setattr(store, "renew_leases", refuse_then_renew)
    engine = Engine(
        store,
        ClipChecker(store, runware, CheckPolicy(first_check_delay_seconds=0)),
        policy=EnginePolicy(lease_seconds=1.5),
    )
    try:
        await engine.reread_project(project)  # tracks the job, due at once
        simulator.hold_requests()  # Runware "hangs": the round outlasts several renewal ticks
        round_task = asyncio.create_task(engine.poll_once())
        await wait_until(lambda: "renewed" in renewals, timeout=30)
        simulator.release_requests()
        claimed = await round_task
    finally:
        simulator.release_requests()
        await runware.aclose()
        await store.close()

    assert claimed == 1
    assert renewals[:REFUSALS] == ["refused"] * REFUSALS
    assert engine.stats.lease_renewal_failures == REFUSALS
    assert engine.stats.results_written == 1
    assert (await clips_of(db, project))[J.slow_answer].startswith("https://")
