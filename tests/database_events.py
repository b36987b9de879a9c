"""A workload with webhooks, polls and archive copies in flight, for the tests that put the
database through what managed Postgres does to it (a restart, a failover) while the service
runs: `start` builds it, `arrange_in_flight` waits until each kind of work is in flight, and
`assert_converged` checks that every clip ends as it should, nothing lost or duplicated.

The checks go through a small asyncpg pool of their own: like the service, they must
reconnect after the database restarts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.archiving import archive_env, archive_tasks, assert_archived_byte_for_byte, serve_videos
from tests.plugin import ADMIN_TOKEN, WEBHOOK_SECRET
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

PROJECTS = 3
JOBS_PER_PROJECT = 6
VIDEO_BYTES = 256 * 1024
# A second a download: copies are still running when the fault comes.
VIDEO_BYTES_PER_SECOND = VIDEO_BYTES
# Generous: these bound a failure only.
CONVERGE_TIMEOUT_SECONDS = 180.0
# Leases short enough that the ones a fault strands expire within the test.
EVENT_ENV = {
    "RECONCILER_LEASE_SECONDS": "2",
    "RECONCILER_ARCHIVE_LEASE_SECONDS": "3",
    "RECONCILER_ARCHIVE_MIN_BYTES_PER_SECOND": "0",
    "RECONCILER_ARCHIVE_CONCURRENCY": "8",
}


async def _init(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def inspection_pool(database_url: str) -> asyncpg.Pool:
    return await asyncpg.create_pool(database_url, min_size=0, max_size=2, init=_init)


@dataclass
class Workload:
    simulator: RunwareSimulator
    database_url: str
    pool: asyncpg.Pool
    projects: list[UUID] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)
    with_webhook: int = 0
    # Pending until the fault comes, then finished: one announced by webhook while the database
    # is unreachable (so it gets a 5xx and is redelivered), one only a poll can settle.
    late_by_webhook: str = field(default_factory=lambda: str(uuid4()))
    late_by_poll: str = field(default_factory=lambda: str(uuid4()))

    async def fetchval(self, query: str) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(query)

    async def add_projects(self, webhook_url: str) -> None:
        """Jobs finishing over the first seconds (half announced by webhook, half polled),
        plus the two late ones in the last project."""
        for p in range(PROJECTS):
            jobs = [str(uuid4()) for _ in range(JOBS_PER_PROJECT)]
            for i, job in enumerate(jobs):
                url = webhook_url if i % 2 == 0 else None
                self.with_webhook += url is not None
                self.simulator.add_job(
                    job, duration=0.3 * (i % 4), outcome="success", webhook_url=url
                )
            if p == PROJECTS - 1:
                self.simulator.add_job(
                    self.late_by_webhook, duration=3600, outcome="success", webhook_url=webhook_url
                )
                self.simulator.add_job(self.late_by_poll, duration=3600, outcome="success")
                self.with_webhook += 1
                jobs += [self.late_by_webhook, self.late_by_poll]
            self.jobs += jobs
            async with self.pool.acquire() as conn:
                project = uuid4()
                await conn.execute(
                    "insert into public.projects (id, name, clips) values ($1, '', $2)",
                    project,
                    dict.fromkeys(jobs, "pending"),
                )
            self.projects.append(project)

    async def arrange_in_flight(self) -> None:
        """Returns once an archive copy is running and a poll round is held at Runware with its
        leases taken (release it with `simulator.release_requests()`)."""

        async def copying() -> bool:
            return bool(
                await self.fetchval(
                    "select count(*) from reconciler.archive_tasks where lease_owner is not null"
                )
            )

        await wait_until(copying, timeout=CONVERGE_TIMEOUT_SECONDS)
        self.simulator.hold_requests()
        await wait_until(
            lambda: self.simulator.state.requests_in_flight > 0, timeout=CONVERGE_TIMEOUT_SECONDS
        )
        leased = await self.fetchval(
            "select count(*) from reconciler.jobs where lease_owner is not null"
        )
        assert leased > 0

    def finish_the_late_jobs(self) -> None:
        self.simulator.complete_now(self.late_by_webhook)
        self.simulator.complete_now(self.late_by_poll)

    async def converged(self) -> bool:
        archived = await self.fetchval(
            "select count(*) from reconciler.archive_tasks where state = 'archived'"
        )
        return bool(archived == len(self.jobs))

    async def assert_converged(self, storage: StorageStandIn) -> None:
        await wait_until(self.converged, timeout=CONVERGE_TIMEOUT_SECONDS)
        await self.simulator.webhooks_settled()
        truth = self.simulator.truth()
        conn = await asyncpg.connect(self.database_url)
        try:
            await _init(conn)
            tasks = await archive_tasks(conn)
            # Every job of every project archived once, from the video Runware made for it.
            assert sorted(job for _, job in tasks) == sorted(self.jobs)
            assert {job: task["source_url"] for (_, job), task in tasks.items()} == {
                job: truth[job] for job in self.jobs
            }
            # ...and every clip holds its copy's URL, the bytes the source serves.
            assert await assert_archived_byte_for_byte(conn, storage, storage.url) == len(self.jobs)
            keys = await conn.fetchval(
                "select count(*) from public.projects p, jsonb_each(p.clips) e"
                " where p.id = any($1::uuid[])",
                self.projects,
            )
        finally:
            await conn.close()
        assert keys == len(self.jobs)
        # Each webhook applied exactly once; none given up.
        assert self.simulator.counters.webhook_delivered == self.with_webhook
        assert self.simulator.counters.webhook_gave_up == 0


def prepare_simulator(simulator: RunwareSimulator) -> None:
    serve_videos(simulator, VIDEO_BYTES)
    simulator.config.videos.bytes_per_second = VIDEO_BYTES_PER_SECOND


def webhook_url(service_url: str) -> str:
    return f"{service_url}/webhooks/runware?token={WEBHOOK_SECRET}"


def service_settings(
    database_url: str, simulator: RunwareSimulator, storage: StorageStandIn
) -> dict[str, str]:
    """A service on the Postgres transport with the engine and archiving on."""
    base = {
        "DATABASE_URL": database_url,
        "RECONCILER_ADMIN_TOKEN": ADMIN_TOKEN,
        "RUNWARE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
        "RECONCILER_BATCH_SIZE": "20",
        "RECONCILER_RUNWARE_MAX_RETRIES": "1",
        "RECONCILER_RUNWARE_REQUESTS_PER_SECOND": "1000",
    }
    return archive_env(base, simulator, storage.url, SERVICE_ROLE_KEY) | EVENT_ENV


@contextlib.asynccontextmanager
async def workload(simulator: RunwareSimulator, database_url: str) -> AsyncIterator[Workload]:
    pool = await inspection_pool(database_url)
    try:
        yield Workload(simulator, database_url, pool)
    finally:
        await pool.close()
