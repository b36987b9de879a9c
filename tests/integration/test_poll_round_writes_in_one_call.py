"""A poll round costs two database calls whatever it finds: one to claim the due jobs, one to
write everything they came to (results per project, reasons, next checks, leases). v0.1 made
one call per job error, one per project, then one to reschedule."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import asyncpg
import pytest

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.engine import Engine, EnginePolicy
from reconciler.local.simulator import RunwareSimulator
from reconciler.runware.client import RunwareClient
from reconciler.store.calls import SqlFunction
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.projects import clips_of, tracked_project


class CountingCaller:
    """Passes every call through to the real transport, counting them by function."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        self.calls[function.name] += 1
        return await self.inner.call(function, arguments)


async def test_a_round_over_many_projects_is_two_calls(
    store: FunctionStore,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    projects = []
    for i in range(5):
        done, failed, waiting = (J.named(f"{kind}-{i}") for kind in ("done", "failed", "waiting"))
        simulator.add_job(done, duration=0, outcome="success")
        simulator.add_job(failed, duration=0, outcome="error")
        simulator.add_job(waiting, duration=3600)
        projects.append(
            await tracked_project(db, dict.fromkeys((done, failed, waiting), "pending"))
        )
    counting = CountingCaller(store._caller)
    monkeypatch.setattr(store, "_caller", counting)
    runware = RunwareClient(simulator.url, simulator.config.api_key, max_retries=0)
    engine = Engine(
        store,
        ClipChecker(store, runware, CheckPolicy(first_check_delay_seconds=0)),
        policy=EnginePolicy(),
    )
    try:
        claimed = await engine.poll_once()
    finally:
        await runware.aclose()

    assert claimed == 15
    assert dict(counting.calls) == {
        "reconciler_claim_due_jobs": 1,
        "reconciler_finish_poll_round": 1,
    }
    assert engine.stats.results_written == 10
    for i, project in enumerate(projects):
        clips = await clips_of(db, project)
        assert clips[J.named(f"failed-{i}")] == "failed"
        assert clips[J.named(f"waiting-{i}")] == "pending"
        assert clips[J.named(f"done-{i}")].startswith("https://")
    rescheduled = await db.fetch(
        "select attempts, lease_owner from reconciler.jobs where job_id = any($1::text[])",
        [J.named(f"waiting-{i}") for i in range(5)],
    )
    assert [(r["attempts"], r["lease_owner"]) for r in rescheduled] == [(1, None)] * 5
    reasons = await db.fetch(
        "select last_error from reconciler.jobs where job_id = any($1::text[])",
        [J.named(f"failed-{i}") for i in range(5)],
    )
    assert len(reasons) == 5
    assert all(r["last_error"] for r in reasons)
