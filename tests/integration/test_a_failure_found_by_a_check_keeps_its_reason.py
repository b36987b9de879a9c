"""A clip the manual check (the check endpoint, the admin page's "check now") finds failed is
listed among the operator view's failures with Runware's reason, as one the poller finds is."""

from __future__ import annotations

import asyncpg

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.local.simulator import RunwareSimulator
from reconciler.operator.views import read_overview
from reconciler.runware.client import RunwareClient
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.projects import clips_of, tracked_project


async def test_the_reason_of_a_failure_found_by_a_check_is_kept(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.job_bad, duration=0, outcome="error", error_code="timeoutProvider")
    simulator.add_job(J.job_good, duration=0, outcome="success")
    project = await tracked_project(db, {J.job_bad: "pending", J.job_good: "pending"})
    runware = RunwareClient(simulator.url, simulator.config.api_key, max_retries=0)
    try:
        await ClipChecker(store, runware, CheckPolicy(first_check_delay_seconds=0)).check(project)
    finally:
        await runware.aclose()

    assert (await clips_of(db, project))[J.job_bad] == "failed"
    [failure] = (await read_overview(store)).failures_24h
    assert (failure.project_id, failure.job_id) == (project, J.job_bad)
    assert "timeoutProvider" in failure.reason
