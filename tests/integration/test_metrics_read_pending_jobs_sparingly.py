"""Scrapes cannot hammer the database: pending-job figures are read at most once per cache
period, by one query however many scrapes arrive together; failures keep the last values."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.observability.pending import PendingStatsCache
from reconciler.ports import PendingStats, StoreUnavailable
from reconciler.store.functions import FunctionStore
from tests.fake_clock import FakeClock
from tests.job_ids import J
from tests.projects import new_project
from tests.waiting import wait_until


class ScriptedStore:
    """Answers pending_stats() with the next scripted value (or raises it)."""

    def __init__(self, *answers: PendingStats | Exception) -> None:
        self._answers = list(answers)
        self.calls = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def pending_stats(self) -> PendingStats:
        self.calls += 1
        await self.gate.wait()
        answer = self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


FIRST = PendingStats(pending=3, oldest_age_seconds=12.5)
SECOND = PendingStats(pending=1, oldest_age_seconds=2.0)


async def test_reads_once_per_cache_period() -> None:
    store, clock = ScriptedStore(FIRST, SECOND), FakeClock()
    cache = PendingStatsCache(store, max_age_seconds=5, clock=clock)

    assert await cache.refresh() == FIRST
    clock.advance(4.9)
    assert await cache.refresh() == FIRST
    assert store.calls == 1
    clock.advance(0.1)
    assert await cache.refresh() == SECOND
    assert store.calls == 2


async def test_concurrent_scrapes_share_one_query() -> None:
    store = ScriptedStore(FIRST)
    cache = PendingStatsCache(store, clock=FakeClock())
    store.gate.clear()
    scrapes = [asyncio.create_task(cache.refresh()) for _ in range(5)]
    # By the time the first query is under way every scrape has started: without the lock,
    # each would have sent its own.
    await wait_until(lambda: store.calls >= 1)
    store.gate.set()
    assert await asyncio.gather(*scrapes) == [FIRST] * 5
    assert store.calls == 1


async def test_a_failed_read_keeps_the_last_values_and_is_counted() -> None:
    store, clock = ScriptedStore(FIRST, StoreUnavailable("down"), SECOND), FakeClock()
    cache = PendingStatsCache(store, max_age_seconds=5, clock=clock)
    assert await cache.refresh() == FIRST

    clock.advance(5)
    assert await cache.refresh() == FIRST
    assert cache.errors == 1
    # A database that is down is not asked again on every scrape either.
    assert await cache.refresh() == FIRST
    assert store.calls == 2

    clock.advance(5)
    assert await cache.refresh() == SECOND
    assert cache.errors == 1


async def test_a_hanging_database_times_out_and_is_counted() -> None:
    store = ScriptedStore(FIRST)
    store.gate.clear()  # never answers
    cache = PendingStatsCache(store, timeout_seconds=0.01, clock=FakeClock())
    assert await cache.refresh() is None
    assert cache.errors == 1


async def test_the_store_counts_unsettled_jobs_and_the_oldest_age(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """Through both transports (Postgres, and PostgREST's stand-in) on a real database."""
    assert await store.pending_stats() == PendingStats(0, 0.0)

    project = await new_project(db, {J.old: "pending", J.new: "pending", J.done: "pending"})
    await store.sync_project(project, first_check_delay_seconds=0)  # tracks all three
    await store.apply_results(project, {J.done: "failed"})  # settles one
    await db.execute(
        "update reconciler.jobs set first_seen_at = now() - interval '1 hour' where job_id = $1",
        J.old,
    )

    stats = await store.pending_stats()
    assert stats.pending == 2
    assert 3600 <= stats.oldest_age_seconds < 3600 + 60
