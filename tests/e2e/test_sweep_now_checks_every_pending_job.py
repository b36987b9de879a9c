"""`reconciler sweep` checks the jobs whose next check is due; `sweep --now` checks every
pending job at once, also those whose backoff has not run out (the operator forcing a check):
known truth, three tracked jobs none of which is due, two finished at Runware."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import clips_of, tracked_project


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args)
    return done.returncode, done.stdout, done.stderr


async def test_sweep_now_checks_every_pending_job_even_when_none_is_due(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.now_done_1, duration=0, outcome="success")
    simulator.add_job(J.now_done_2, duration=0, outcome="success")
    simulator.add_job(J.now_slow, duration=3600)
    project = await tracked_project(
        db, {J.now_done_1: "pending", J.now_done_2: "pending", J.now_slow: "pending"}
    )
    await db.execute("update reconciler.jobs set next_check_at = now() + interval '1 hour'")

    due_only = await _run(service_env, "sweep")
    after_due_only = await clips_of(db, project)
    forced = await _run(service_env, "sweep", "--now")
    slow = await db.fetchrow(
        "select attempts, next_check_at > now() as later, settled_at from reconciler.jobs"
        " where job_id = $1",
        J.now_slow,
    )

    assert due_only[0] == 0, due_only[2]
    assert "checked 0 jobs" in due_only[1]
    assert set(after_due_only.values()) == {"pending"}
    assert forced[0] == 0, forced[2]
    assert "checked 3 jobs with Runware; 2 clips settled" in forced[1]
    truth = simulator.truth()
    assert await clips_of(db, project) == {
        J.now_done_1: truth[J.now_done_1],
        J.now_done_2: truth[J.now_done_2],
        J.now_slow: "pending",
    }
    assert slow is not None
    assert (slow["attempts"], slow["later"], slow["settled_at"]) == (1, True, None)
