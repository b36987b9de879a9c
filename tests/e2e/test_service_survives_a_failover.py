"""A failover, as a client sees one: every connection to the database dropped at once and new
ones refused for 10 s (the TCP proxy between service and database), while webhooks, polls and
archive copies are in flight. The service, a real `reconciler serve` process, keeps trying,
reconnects once connections are accepted again, and converges: every clip with its right
value, nothing lost or duplicated, no operator action."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, WebhookRetry
from reconciler.local.storage import StorageStandIn
from tests.archiving import BUCKET
from tests.database_events import (
    Workload,
    prepare_simulator,
    service_settings,
    webhook_url,
    workload,
)
from tests.processes import ServiceProcess
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.standins.tcp_proxy import TcpProxy
from tests.waiting import wait_until

# The fault's length, not a bound on anything the test waits for.
REFUSE_SECONDS = 10.0
PATIENT_RETRY = WebhookRetry(first_delay_seconds=0.05, cap_seconds=0.5, max_attempts=10_000)


def _via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(database_url)
    async with TcpProxy("127.0.0.1", target.port or 5432).running() as running:
        yield running


@pytest.fixture
async def patient_simulator() -> AsyncIterator[RunwareSimulator]:
    async with RunwareSimulator(SimulatorConfig(seed=23, webhook_retry=PATIENT_RETRY)) as sim:
        prepare_simulator(sim)
        yield sim


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


async def test_a_failover_mid_run_loses_nothing(
    database_url: str,
    proxy: TcpProxy,
    patient_simulator: RunwareSimulator,
    storage: StorageStandIn,
) -> None:
    simulator = patient_simulator
    env = service_settings(_via(database_url, proxy.port), simulator, storage)
    async with workload(simulator, database_url) as work:
        await _run(work, ServiceProcess(env), proxy, storage)


async def _run(
    work: Workload, service: ServiceProcess, proxy: TcpProxy, storage: StorageStandIn
) -> None:
    simulator = work.simulator
    async with service:
        await work.add_projects(webhook_url(service.url))
        await work.arrange_in_flight()

        proxy.fail_over(REFUSE_SECONDS)
        work.finish_the_late_jobs()
        # The held round is answered into a service whose connections were just dropped.
        simulator.release_requests()
        await wait_until(lambda: simulator.state.requests_in_flight == 0, timeout=60)
        # The service keeps trying while connections are refused...
        await wait_until(lambda: proxy.refused > 0, timeout=60)
        # ...and converges once they are accepted again.
        await work.assert_converged(storage)
    assert proxy.up
