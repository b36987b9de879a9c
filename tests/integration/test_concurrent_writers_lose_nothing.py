"""I2: the app adding keys while results land from many writers at once loses nothing."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from uuid import UUID

import asyncpg

from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store
from tests.projects import add_pending_clip, clips_of, new_project

ROUNDS = 25
RESULT_WRITERS = 8
APP_WRITERS = 8


async def _land(
    store: FunctionStore, project: UUID, job_id: str, url: str, winners: dict[str, list[str]]
) -> None:
    outcome = await store.apply_results(project, {job_id: url})
    for changed_job, value in outcome.changed.items():
        winners.setdefault(changed_job, []).append(value)


async def _app_adds(pool: asyncpg.Pool, project: UUID, job_id: str) -> None:
    async with pool.acquire() as conn:
        await add_pending_clip(conn, project, job_id)


async def test_concurrent_app_and_result_writers(database_url: str, db: asyncpg.Connection) -> None:
    store = await connect_postgres_store(database_url, max_size=RESULT_WRITERS)
    app_pool = await asyncpg.create_pool(database_url, min_size=APP_WRITERS, max_size=APP_WRITERS)
    rng = random.Random(1234)
    try:
        for round_number in range(ROUNDS):
            initial = {f"r{round_number}-job{i}": "pending" for i in range(RESULT_WRITERS * 2)}
            project = await new_project(db, initial)
            results = {job: f"https://vm.runware.ai/video/{job}.mp4" for job in initial}
            jobs = list(results)
            rng.shuffle(jobs)
            # Half the jobs get a second, competing result: exactly one of the two must win,
            # and the stored value must be the winner's.
            attempts = [(job, results[job]) for job in jobs] + [
                (job, results[job] + "?competing") for job in jobs[: len(jobs) // 2]
            ]
            added = [f"r{round_number}-app{i}" for i in range(APP_WRITERS * 2)]
            winners: dict[str, list[str]] = {}
            calls: list[Awaitable[None]] = [
                *(_land(store, project, job, url, winners) for job, url in attempts),
                *(_app_adds(app_pool, project, job) for job in added),
            ]
            rng.shuffle(calls)
            await asyncio.gather(*calls)

            final = await clips_of(db, project)
            assert set(final) == set(initial) | set(added), f"round {round_number}: lost keys"
            assert all(final[job] == "pending" for job in added)
            for job in initial:
                assert len(winners[job]) == 1, f"round {round_number}: {job} written twice"
                assert final[job] == winners[job][0]
    finally:
        await app_pool.close()
        await store.close()
