"""`GET /metrics` during a real run (PostgreSQL, the outbox, the Runware simulator):
some clips settle by webhook, others by polling, and the series move accordingly."""

from __future__ import annotations

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, WEBHOOK_SECRET, AppFactory
from tests.projects import clips_of, new_project
from tests.scrape import Scrape, scrape
from tests.waiting import wait_until

HOOKED = [J.hook_1, J.hook_2, J.hook_3]
POLLED = [J.poll_1, J.poll_2]


def _delta(after: Scrape, before: Scrape, name: str, **labels: str) -> float:
    return after.get(name, **labels) - (before.value(name, **labels) or 0.0)


async def test_counters_and_gauges_move_as_clips_settle(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    async with run_app(service_env | ENGINE_ENV) as running:
        engine = running.engine
        hook_url = f"{running.url}/webhooks/runware?token={WEBHOOK_SECRET}"
        # Long jobs: nothing settles until the test says so.
        for job in HOOKED:
            simulator.add_job(job, duration=3600, outcome="success", webhook_url=hook_url)
        for job in POLLED:
            simulator.add_job(job, duration=3600, outcome="success")  # no webhook: polling only
        await wait_until(lambda: engine.stats.sweeps > 0)
        project = await new_project(db, dict.fromkeys(HOOKED + POLLED, "pending"))
        # Drained, then polled: all five jobs are tracked.
        await wait_until(lambda: engine.stats.jobs_polled > 0 and engine.stats.changes_drained > 0)

        before = await scrape(running.url)
        assert before.get("reconciler_pending_jobs") == 5
        assert before.get("reconciler_oldest_pending_job_age_seconds") > 0
        assert before.get("reconciler_runware_requests_total", status="200") > 0
        assert before.get("reconciler_changes_drained_total") >= 1
        assert before.get("reconciler_changes_waiting") >= 0
        assert before.get("reconciler_untrackable_clips") == 0
        assert before.get("reconciler_sweeps_total") >= 1

        # Hold Runware's answers so that no poll can settle a hooked job before its webhook
        # does; a poll round stuck meanwhile shows as leases held.
        simulator.hold_requests()
        await wait_until(lambda: simulator.state.requests_in_flight > 0)
        held = await scrape(running.url)
        assert held.get("reconciler_leases_held") >= 1
        for job in HOOKED:
            simulator.complete_now(job)

        async def hooked_settled() -> bool:
            clips = await clips_of(db, project)
            return all(clips[job] != "pending" for job in HOOKED)

        await wait_until(hooked_settled)
        for job in POLLED:
            simulator.complete_now(job)
        simulator.release_requests()

        async def all_settled() -> bool:
            return "pending" not in (await clips_of(db, project)).values()

        await wait_until(all_settled, timeout=30)

        async def idle() -> bool:
            # The database is read at most every few seconds: wait for a read after the end,
            # and for the last poll round to have let go of its jobs.
            now = await scrape(running.url)
            return (
                now.get("reconciler_pending_jobs") == 0 and now.get("reconciler_leases_held") == 0
            )

        await wait_until(idle, timeout=30, interval=0.2)
        after = await scrape(running.url)

    assert _delta(after, before, "reconciler_webhooks_total", outcome="applied") == len(HOOKED)
    assert after.get("reconciler_webhooks_total", outcome="unauthorized") == 0
    assert _delta(after, before, "reconciler_results_written_total") == len(POLLED)
    assert _delta(after, before, "reconciler_runware_requests_total", status="200") > 0
    assert _delta(after, before, "reconciler_poll_round_duration_seconds_count") > 0
    assert after.get("reconciler_oldest_pending_job_age_seconds") == 0
    assert after.get("reconciler_leases_held") == 0
    assert after.get("reconciler_queue_depth") >= 0
    assert after.get("reconciler_gave_up_total") == 0
    assert after.get("reconciler_scrape_errors_total") == 0
    assert after.get("reconciler_projects_skipped_total") == 0
    assert after.value("reconciler_runware_requests_total", status="error") is None
