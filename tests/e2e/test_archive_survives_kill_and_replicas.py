"""Archiving with real processes: a replica killed with SIGKILL in the middle of an upload loses
nothing (its lease expires, a restarted process copies the video again to the same path);
two replicas archive every video exactly once between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import UUID

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.archiving import (
    BUCKET,
    UploadGate,
    archive_env,
    archive_tasks,
    assert_archived_byte_for_byte,
    running_supabase_with_storage,
    serve_videos,
)
from tests.job_ids import J
from tests.processes import ServiceProcess
from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


async def _finished_projects(
    db: asyncpg.Connection, simulator: RunwareSimulator, projects: int, per_project: int
) -> list[UUID]:
    created = []
    for p in range(projects):
        jobs = [J.named(f"arc-{p}-{i}") for i in range(per_project)]
        for job in jobs:
            simulator.add_job(job, duration=0, outcome="success")
        created.append(await new_project(db, dict.fromkeys(jobs, "pending")))
    return created


def _all_archived(db: asyncpg.Connection, expected: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        tasks = await archive_tasks(db)
        return len(tasks) == expected and all(t["state"] == "archived" for t in tasks.values())

    return check


async def test_a_replica_killed_during_an_upload_loses_nothing(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    db: asyncpg.Connection,
) -> None:
    serve_videos(simulator)
    await _finished_projects(db, simulator, projects=1, per_project=3)
    gate = UploadGate()
    gate.close()  # uploads stay in flight until the victim is dead
    async with running_supabase_with_storage(None, storage, gate) as url:
        env = archive_env(service_env, simulator, url, SERVICE_ROLE_KEY) | {
            "RECONCILER_ARCHIVE_LEASE_SECONDS": "2"
        }
        victim, survivor = ServiceProcess(dict(env)), ServiceProcess(dict(env))
        try:
            await victim.start()
            await wait_until(lambda: gate.held >= 1, timeout=60)
            leased = await db.fetchval(
                "select count(*) from reconciler.archive_tasks where lease_owner is not null"
            )
            victim.kill()
            await victim.wait(timeout=10)
            gate.open()

            await survivor.start()
            await wait_until(_all_archived(db, 3), timeout=60)
        finally:
            gate.open()
            await asyncio.gather(victim.stop(), survivor.stop())

        assert leased >= 1
        assert await assert_archived_byte_for_byte(db, storage, url) == 3
    tasks = await archive_tasks(db)
    # The killed attempts count: the leased tasks were claimed twice.
    assert sorted(t["attempts"] for t in tasks.values())[-1] == 2


async def test_two_replicas_archive_every_video_exactly_once(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    db: asyncpg.Connection,
) -> None:
    serve_videos(simulator, 128 * 1024)
    await _finished_projects(db, simulator, projects=4, per_project=4)
    env = archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY)
    replicas = [ServiceProcess(dict(env)), ServiceProcess(dict(env))]
    try:
        await asyncio.gather(*(r.start() for r in replicas))
        await wait_until(_all_archived(db, 16), timeout=90)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))

    assert await assert_archived_byte_for_byte(db, storage, storage.url) == 16
    # One upload per video: no task was copied by both replicas.
    assert storage.counters.standard_uploads == 16
    assert all(t["attempts"] == 1 for t in (await archive_tasks(db)).values())


async def test_sigterm_during_an_upload_hands_the_copies_back(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    db: asyncpg.Connection,
) -> None:
    serve_videos(simulator)
    await _finished_projects(db, simulator, projects=1, per_project=2)
    gate = UploadGate()
    gate.close()
    async with running_supabase_with_storage(None, storage, gate) as url:
        env = archive_env(service_env, simulator, url, SERVICE_ROLE_KEY) | {
            "RECONCILER_SHUTDOWN_SECONDS": "1"
        }
        service = ServiceProcess(env)
        try:
            await service.start()
            await wait_until(lambda: gate.held >= 1, timeout=60)
            service.terminate()
            await service.wait(timeout=30)
        finally:
            gate.open()
            await service.stop()

    tasks = (await archive_tasks(db)).values()
    # Handed back at once (no lease to wait out), the interrupted attempt not counted.
    assert [(t["state"], t["lease_owner"], t["attempts"]) for t in tasks] == [
        ("queued", None, 0),
        ("queued", None, 0),
    ]
