"""I4 and I6 with real processes: two replicas never poll one job at the same time and settle
everything together; a replica killed with SIGKILL loses nothing; SIGTERM stops within the
deadline and releases the leases."""

from __future__ import annotations

import asyncio
import signal
import time
from uuid import UUID

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ENGINE_ENV
from tests.processes import ServiceProcess
from tests.projects import clips_of, new_project
from tests.waiting import wait_until


async def _pending_count(db: asyncpg.Connection) -> int:
    count: int = await db.fetchval(
        "select count(*) from public.projects p, jsonb_each(p.clips) e"
        " where e.value = '\"pending\"'"
    )
    return count


async def _create_jobs(
    simulator: RunwareSimulator, db: asyncpg.Connection, projects: int, per_project: int
) -> list[UUID]:
    created = []
    for p in range(projects):
        jobs = [J.named(f"rep-{p}-{i}") for i in range(per_project)]
        for i, job in enumerate(jobs):
            simulator.add_job(job, duration=0.3 + (i % 5) * 0.3, outcome="success")
        created.append(await new_project(db, dict.fromkeys(jobs, "pending")))
    return created


async def test_two_replicas_never_poll_the_same_job_at_once(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.config.api.latency_seconds = 0.05  # keeps requests in service long enough to overlap
    projects = await _create_jobs(simulator, db, projects=8, per_project=25)
    env = service_env | ENGINE_ENV | {"RECONCILER_CLAIM_BATCH": "20", "RECONCILER_BATCH_SIZE": "10"}
    replicas = [ServiceProcess(dict(env)), ServiceProcess(dict(env))]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        await wait_until(lambda: _pending_count_is_zero(db), timeout=90)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))

    truth = simulator.truth()
    for project in projects:
        clips = await clips_of(db, project)
        assert clips == {job: truth[job] for job in clips}
    assert simulator.counters.get_response_tasks >= 200
    assert simulator.counters.overlapping_polls == 0


async def _pending_count_is_zero(db: asyncpg.Connection) -> bool:
    return await _pending_count(db) == 0


async def test_a_replica_killed_mid_run_loses_nothing(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    projects = await _create_jobs(simulator, db, projects=4, per_project=10)
    env = service_env | ENGINE_ENV | {"RECONCILER_LEASE_SECONDS": "2"}
    victim = ServiceProcess(dict(env))
    survivor = ServiceProcess(dict(env))
    try:
        simulator.hold_requests()  # the victim's first poll round stays in flight, leases held
        await victim.start()
        await wait_until(lambda: simulator.state.requests_in_flight > 0, timeout=30)
        leased = await db.fetchval(
            "select count(*) from reconciler.jobs where lease_owner is not null"
        )
        victim.kill()
        await victim.wait(timeout=10)
        simulator.release_requests()

        await survivor.start()
        await wait_until(lambda: _pending_count_is_zero(db), timeout=60)
    finally:
        simulator.release_requests()
        await victim.stop()
        await survivor.stop()

    assert leased > 0
    truth = simulator.truth()
    for project in projects:
        clips = await clips_of(db, project)
        assert clips == {job: truth[job] for job in clips}


async def test_sigterm_stops_within_the_deadline_and_releases_leases(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    await _create_jobs(simulator, db, projects=2, per_project=10)
    deadline = 3.0
    env = service_env | ENGINE_ENV | {"RECONCILER_SHUTDOWN_SECONDS": str(deadline)}
    service = ServiceProcess(env)
    try:
        simulator.hold_requests()  # a poll round is in flight when the signal arrives
        await service.start()
        await wait_until(lambda: simulator.state.requests_in_flight > 0, timeout=30)
        leased_before = await db.fetchval(
            "select count(*) from reconciler.jobs where lease_owner is not null"
        )
        started = time.monotonic()
        service.terminate()
        code = await service.wait(timeout=deadline + 10)
        took = time.monotonic() - started
    finally:
        simulator.release_requests()
        await service.stop()

    assert leased_before > 0
    # uvicorn re-raises the signal after its graceful shutdown, so the exit status says SIGTERM;
    # that the shutdown really ran shows in the released leases.
    assert code in (0, -signal.SIGTERM)
    print(f"SIGTERM to exit: {took:.2f} s (deadline {deadline} s)")
    assert (
        await db.fetchval("select count(*) from reconciler.jobs where lease_owner is not null") == 0
    )
