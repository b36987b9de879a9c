"""Every webhook outcome is counted in `reconciler_webhooks_total`, on both transports, and
`GET /metrics` answers without credentials (operators keep it off the public internet)."""

from __future__ import annotations

import asyncpg
import httpx

from reconciler.ports import WebhookOutcome
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import new_project
from tests.scrape import scrape

OUTCOMES = [outcome.value for outcome in WebhookOutcome]


async def test_each_outcome_is_counted(service: RunningService, db: asyncpg.Connection) -> None:
    await new_project(db, {J.job_1: "pending", J.job_2: "pending"})
    start = await scrape(service.url)
    assert {
        o: start.get("reconciler_webhooks_total", outcome=o) for o in OUTCOMES
    } == dict.fromkeys(OUTCOMES, 0.0)

    url = bodies.video_url("x")
    answers = [
        await service.post_webhook(bodies.flat_success(J.job_1, url)),  # applied
        await service.post_webhook(bodies.flat_success(J.job_1, url)),  # duplicate
        await service.post_webhook(bodies.flat_success(J.not_yet_pending, url)),  # parked
        await service.post_webhook({"taskUUID": J.job_2, "status": "processing"}),  # ignored
        await service.post_webhook(bodies.flat_success(J.job_2, "https://evil.example/v.mp4")),
        await service.post_webhook(bodies.flat_success(J.job_2, url), token="wrong-token-0000000"),
        await service.post_webhook(bodies.flat_success(J.job_2, url) | {"junk": "x" * 300_000}),
        await service.post_webhook(None, raw=b"{not json"),
        await service.post_webhook({"no": "task"}),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 422, 401, 413, 400, 400]

    counted = await scrape(service.url)
    assert {o: counted.get("reconciler_webhooks_total", outcome=o) for o in OUTCOMES} == {
        "applied": 1,
        "parked": 1,
        "duplicate": 1,
        "ignored": 1,
        "rejected": 1,
        "unauthorized": 1,
        "too_large": 1,
        "invalid": 2,
        "unavailable": 0,
    }


async def test_metrics_need_no_credentials_and_skip_engine_series_without_engine(
    service: RunningService,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{service.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "x-request-id" in response.headers

    scraped = await scrape(service.url)
    assert scraped.get("reconciler_pending_jobs") == 0
    assert scraped.get("reconciler_scrape_errors_total") == 0
    # RECONCILER_ENGINE=0 in these tests: no queue, no poller, no feed to report on.
    assert "reconciler_queue_depth" not in scraped.names()
    assert "reconciler_feed_state" not in scraped.names()
