"""The engine notices pending jobs by itself and converges, whatever the inputs drop."""

from __future__ import annotations

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.runware.client import RunwareClient
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, WEBHOOK_SECRET, AppFactory
from tests.projects import add_pending_clip, clips_of, new_project
from tests.waiting import wait_until


async def _all_settled(db: asyncpg.Connection) -> bool:
    pending = await db.fetchval(
        "select count(*) from public.projects p, jsonb_each(p.clips) e"
        " where e.value = '\"pending\"'"
    )
    return bool(pending == 0)


async def test_a_clip_added_by_the_app_is_noticed_through_the_outbox(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    env = (
        service_env
        | ENGINE_ENV
        | {
            "RECONCILER_SWEEP_ON_START": "0",
            "RECONCILER_SWEEP_INTERVAL_SECONDS": "0",
        }
    )
    project = await new_project(db, {})
    async with run_app(env) as running:
        engine = running.engine
        assert engine.feed is None  # the Postgres transport needs none: the outbox is the feed
        await wait_until(lambda: engine.stats.changes_drained == 1)  # the project's insert
        simulator.add_job(J.fed_1, duration=0, outcome="success")
        await add_pending_clip(db, project, J.fed_1)

        await wait_until(lambda: engine.stats.results_written == 1)

        # No sweep ran: only the outbox the app's own transaction wrote told the engine.
        assert engine.stats.sweeps == 0
        assert engine.stats.changes_drained == 2
    assert await clips_of(db, project) == {J.fed_1: simulator.truth()[J.fed_1]}


async def test_with_every_webhook_dropped_every_clip_settles(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    simulator.config.webhooks.drop = 1.0
    simulator.config.jobs.seconds = 0.2
    simulator.config.jobs.seconds_jitter = 0.5
    simulator.config.jobs.fail_rate = 0.2
    async with run_app(service_env | ENGINE_ENV) as running:
        webhook_url = f"{running.url}/webhooks/runware?token={WEBHOOK_SECRET}"
        async with RunwareClient(simulator.url, simulator.config.api_key) as app_runware:
            projects = []
            for p in range(3):
                jobs = [J.named(f"drop-{p}-{i}") for i in range(10)]
                for job in jobs:
                    await app_runware.submit_video(job, webhook_url=webhook_url)
                projects.append(await new_project(db, dict.fromkeys(jobs, "pending")))

        await wait_until(lambda: _all_settled(db), timeout=60)

    truth = simulator.truth()
    for project in projects:
        clips = await clips_of(db, project)
        assert clips == {job: truth[job] for job in clips}
    assert simulator.counters.webhook_dropped == 30
    assert simulator.counters.webhook_delivered == 0


async def test_the_give_up_age_fails_the_clip_with_a_reason(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    simulator.add_job(J.forever, duration=3600)
    project = await new_project(db, {J.forever: "pending"})
    env = service_env | ENGINE_ENV | {"RECONCILER_GIVE_UP_SECONDS": "1"}
    async with run_app(env) as running:
        await wait_until(lambda: running.engine.stats.gave_up == 1, timeout=30)

    assert await clips_of(db, project) == {J.forever: "failed"}
    row = await db.fetchrow(
        "select outcome, last_error from reconciler.jobs where job_id = $1", J.forever
    )
    assert row is not None
    assert row["outcome"] == "failed"
    assert row["last_error"].startswith("gave up after")
