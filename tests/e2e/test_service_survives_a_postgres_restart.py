"""A PostgreSQL restart (pg_ctl stop -m fast, then start, on a cluster of the test's own) while
webhooks, polls and archive copies are in flight: the service, a real `reconciler serve`
process, re-makes its connections, the leases the interrupted round and copies held are taken
again once they expire, the webhook that got a 5xx during the restart is redelivered by Runware
(the simulator) and applied, and every clip ends with its right value, nothing lost or
duplicated. No operator action: the process is never restarted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

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
from tests.databases import PgCluster, dedicated_cluster, stop_server
from tests.processes import ServiceProcess
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

# Runware keeps redelivering for as long as the restart takes (the test's own deadline bounds
# it).
PATIENT_RETRY = WebhookRetry(first_delay_seconds=0.05, cap_seconds=0.5, max_attempts=10_000)


@pytest.fixture
async def cluster() -> AsyncIterator[PgCluster]:
    own = await dedicated_cluster()
    try:
        yield own
    finally:
        await asyncio.to_thread(own.server.stop)


@pytest.fixture
async def patient_simulator() -> AsyncIterator[RunwareSimulator]:
    async with RunwareSimulator(SimulatorConfig(seed=19, webhook_retry=PATIENT_RETRY)) as sim:
        prepare_simulator(sim)
        yield sim


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


async def test_a_restart_mid_run_loses_nothing(
    cluster: PgCluster,
    patient_simulator: RunwareSimulator,
    storage: StorageStandIn,
) -> None:
    simulator = patient_simulator
    database_url = await cluster.create_database()
    service = ServiceProcess(service_settings(database_url, simulator, storage))
    async with workload(simulator, database_url) as work:
        await _run(work, service, cluster, storage)


async def _run(
    work: Workload, service: ServiceProcess, cluster: PgCluster, storage: StorageStandIn
) -> None:
    simulator = work.simulator
    async with service:
        await work.add_projects(webhook_url(service.url))
        await work.arrange_in_flight()

        await asyncio.to_thread(stop_server, cluster.server)
        failed_before = simulator.counters.webhook_failed_attempts
        work.finish_the_late_jobs()
        # The late webhook is refused while the database is down (Runware will retry it), and
        # the held round is answered into a service that cannot record it.
        await wait_until(
            lambda: simulator.counters.webhook_failed_attempts > failed_before, timeout=60
        )
        simulator.release_requests()
        await wait_until(lambda: simulator.state.requests_in_flight == 0, timeout=60)
        await asyncio.to_thread(cluster.server.start)

        restarted = asyncio.get_running_loop().time()
        await work.assert_converged(storage)
        print(f"converged {asyncio.get_running_loop().time() - restarted:.1f} s after the restart")
    assert simulator.counters.webhook_failed_attempts > failed_before
