"""I11: a clip becomes "failed" only because Runware said so, or kept saying "still working" past
the give-up age — never because Runware was unreachable, rate-limited us or rejected our key.
Those keep the clip pending, loudly (metrics, logs, /readyz), and the real result still lands.
(Runware answering "still working" past the give-up age does fail the clip:
test_engine_settles_clips_without_webhooks.py.)"""

from __future__ import annotations

from uuid import UUID

import asyncpg
import httpx
import pytest

from reconciler.local.localpg import free_port
from reconciler.local.simulator import ApiFaults, RunwareSimulator
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, WEBHOOK_SECRET, AppFactory, RunningService
from tests.projects import clips_of, new_project
from tests.scrape import scrape
from tests.waiting import wait_until


async def _pending_for_an_hour(db: asyncpg.Connection, job: str) -> UUID:
    """A pending clip whose job has been tracked for an hour: every check is past give-up."""
    project = await new_project(db, {job: "pending"})
    await db.execute(
        "insert into reconciler.jobs (job_id, project_id, first_seen_at)"
        " values ($1, $2, now() - interval '1 hour')",
        job,
        project,
    )
    return project


@pytest.mark.parametrize("trouble", ["key-rejected", "unreachable", "rate-limited"])
async def test_failed_checks_past_the_give_up_age_keep_the_clip_pending(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    trouble: str,
) -> None:
    job = J.named(f"held-{trouble}")
    simulator.add_job(job, duration=0, outcome="success")  # Runware has the result
    project = await _pending_for_an_hour(db, job)
    env = service_env | ENGINE_ENV | {"RECONCILER_GIVE_UP_SECONDS": "1"}
    if trouble == "key-rejected":
        env |= {"RUNWARE_API_KEY": "not-the-key"}
    elif trouble == "unreachable":
        env |= {"RUNWARE_API_URL": f"http://127.0.0.1:{free_port()}/v1"}
    else:
        simulator.config.api = ApiFaults(error_rate=1.0, error_statuses=(429,))

    async with run_app(env) as running:
        # Two rounds, each past the give-up age, each without an answer from Runware.
        await wait_until(lambda: running.engine.stats.check_failures >= 2, timeout=60)
        metrics = await scrape(running.url)
        async with httpx.AsyncClient(timeout=30) as client:
            readyz = await client.get(f"{running.url}/readyz")
        clips = await clips_of(db, project)
        trouble_shown = running.engine.check_trouble
        row = await db.fetchrow(
            "select outcome, last_error from reconciler.jobs where job_id=$1", job
        )

        # The result arriving later is applied, not a duplicate of a "failed" we made up.
        service = RunningService(running.url, "", "postgres")
        webhook = await service.post_webhook(
            bodies.flat_success(job, bodies.video_url(job)), token=WEBHOOK_SECRET
        )

    assert clips == {job: "pending"}
    assert trouble_shown is not None
    assert running.engine.stats.gave_up == 0
    assert metrics.get("reconciler_runware_checks_failing") == 1
    assert readyz.status_code == 200  # webhooks still land: no reason to leave the balancer
    assert readyz.json()["runware"] == "failing"
    assert metrics.get("reconciler_check_failures_total") >= 2
    assert row is not None
    assert row["outcome"] is None
    assert row["last_error"]
    assert webhook.status_code == 200
    assert webhook.json()["applied"] == [job]
    assert await clips_of(db, project) == {job: bodies.video_url(job)}
