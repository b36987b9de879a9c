"""I3: with the database down a webhook gets 503 (so Runware retries), never a 2xx without the
durable write; when the database is back, the retry succeeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, WebhookRetry
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET, RunningService, ServiceFactory
from tests.projects import clips_of, new_project
from tests.standins.tcp_proxy import TcpProxy
from tests.waiting import wait_until


def _via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(database_url)
    async with TcpProxy("127.0.0.1", target.port or 5432).running() as running:
        yield running


async def test_503_while_down_then_success_on_retry(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
    db: asyncpg.Connection,
    proxy: TcpProxy,
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    env = service_env | {"DATABASE_URL": _via(database_url, proxy.port)}
    body = bodies.flat_success(J.job_1, bodies.video_url(J.job_1))
    async with run_service(env) as url:
        service = RunningService(url, "", "postgres")
        assert (
            await service.post_webhook(bodies.flat_success(J.warm, bodies.video_url("w")))
        ).status_code == 200
        proxy.cut()
        down = await service.post_webhook(body)
        assert await clips_of(db, project) == {J.job_1: "pending"}
        proxy.restore()
        retried = await service.post_webhook(body)

    assert down.status_code == 503
    assert down.headers["retry-after"]
    assert retried.status_code == 200
    assert retried.json()["applied"] == [J.job_1]
    assert await clips_of(db, project) == {J.job_1: bodies.video_url(J.job_1)}


async def test_runware_redelivery_lands_after_an_outage(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
    db: asyncpg.Connection,
    proxy: TcpProxy,
) -> None:
    """The simulator plays Runware: it retries on 503 until the database is back."""
    retry = WebhookRetry(first_delay_seconds=0.02, cap_seconds=0.1, max_attempts=200)
    async with RunwareSimulator(SimulatorConfig(seed=3, webhook_retry=retry)) as simulator:
        env = service_env | {
            "DATABASE_URL": _via(database_url, proxy.port),
            "RUNWARE_API_URL": simulator.url,
        }
        project = await new_project(db, {J.job_1: "pending"})
        async with run_service(env) as url:
            proxy.cut()
            webhook_url = f"{url}/webhooks/runware?token={WEBHOOK_SECRET}"
            simulator.add_job(J.job_1, duration=0, outcome="success", webhook_url=webhook_url)
            await wait_until(lambda: simulator.counters.webhook_failed_attempts >= 3)
            assert await clips_of(db, project) == {J.job_1: "pending"}
            proxy.restore()
            await simulator.webhooks_settled()

        assert simulator.counters.webhook_delivered == 1
        assert await clips_of(db, project) == {J.job_1: simulator.truth()[J.job_1]}
