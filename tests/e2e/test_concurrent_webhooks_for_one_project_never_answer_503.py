"""Item 19 over HTTP: sixteen webhooks for jobs of one project, posted at once while eight app
writers add clips to the same row, round after round, on each transport: every webhook is
answered 200 and applied (never 503, "not stored yet"), and PostgreSQL broke no deadlock."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable
from uuid import UUID, uuid4

import asyncpg
import httpx

from tests import webhook_bodies as bodies
from tests.plugin import RunningService
from tests.projects import new_project
from tests.waiting import wait_until

ROUNDS = 8
WEBHOOKS = 16
APP_WRITERS = 8


async def _deadlocks(db: asyncpg.Connection) -> int:
    await db.execute("select pg_stat_clear_snapshot()")
    count: int = await db.fetchval(
        "select deadlocks from pg_stat_database where datname = current_database()"
    )
    return count


async def _no_other_connection(db: asyncpg.Connection) -> bool:
    """Counters are flushed when a backend ends: the service's connections must be gone."""
    others: int = await db.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and pid <> pg_backend_pid()"
    )
    return others == 0


async def test_concurrent_webhooks_and_app_writers_are_all_answered_200(
    service: RunningService, db: asyncpg.Connection, database_url: str
) -> None:
    rng = random.Random(19)
    before = await _deadlocks(db)
    answers: list[tuple[int, str]] = []
    app = await asyncpg.create_pool(database_url, min_size=0, max_size=APP_WRITERS)
    try:
        async with httpx.AsyncClient(timeout=60) as client:

            async def webhook(job: str) -> None:
                response = await client.post(
                    service.webhook_url(), json=bodies.flat_success(job, bodies.video_url(job))
                )
                answers.append((response.status_code, response.text))

            async def app_adds(project: UUID) -> None:
                async with app.acquire() as conn:
                    await conn.execute(
                        "update public.projects set clips = clips ||"
                        " jsonb_build_object($2::text, 'pending') where id = $1",
                        project,
                        str(uuid4()),
                    )

            for _ in range(ROUNDS):
                jobs = [str(uuid4()) for _ in range(WEBHOOKS)]
                # Half tracked already, half only just written by the app (still in the outbox).
                project = await new_project(db, dict.fromkeys(jobs[: WEBHOOKS // 2], "pending"))
                await db.execute("select public.reconciler_drain_changes(1000, 0, 0)")
                await db.execute(
                    "update public.projects set clips = clips || $2::text::jsonb where id = $1",
                    project,
                    json.dumps(dict.fromkeys(jobs[WEBHOOKS // 2 :], "pending")),
                )
                calls: list[Awaitable[None]] = [
                    *(webhook(job) for job in jobs),
                    *(app_adds(project) for _ in range(APP_WRITERS)),
                ]
                rng.shuffle(calls)
                await asyncio.gather(*calls)

                clips = await db.fetchval(
                    "select clips from public.projects where id = $1", project
                )
                assert {job: clips[job] for job in jobs} == {
                    job: bodies.video_url(job) for job in jobs
                }
    finally:
        await app.close()

    assert [status for status, _ in answers] == [200] * (ROUNDS * WEBHOOKS), answers
    assert all(json.loads(text)["applied"] for _, text in answers)
    await _end_other_connections(db)
    assert await _deadlocks(db) - before == 0


async def _end_other_connections(db: asyncpg.Connection) -> None:
    """The service keeps its pool open, and a backend may hold its counters until it ends: end
    the service's connections (its pool reconnects by itself) and wait until they are gone."""
    await db.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()"
    )
    await wait_until(lambda: _no_other_connection(db), timeout=60.0)
