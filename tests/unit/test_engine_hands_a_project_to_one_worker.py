"""The engine's workers and their keyed queue: a project hinted many times is reconciled by one
worker at a time, once more for the hints that came while it was being reconciled, while other
workers take other projects."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from uuid import UUID

from reconciler.clock import Clock
from reconciler.ports import ProjectSnapshot
from tests.fakes.engines import EngineWorld
from tests.fakes.memory_store import MemoryStore
from tests.waiting import wait_until


class GatedReads(MemoryStore):
    """Holds every `sync_project` at a gate, counting how many run at once per project."""

    def __init__(self, clock: Clock, *, rng: random.Random | None = None) -> None:
        super().__init__(clock, rng=rng)
        self.gate = asyncio.Event()
        self.in_flight: Counter[UUID] = Counter()
        self.most_at_once: Counter[UUID] = Counter()
        self.reads: Counter[UUID] = Counter()

    async def sync_project(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        spread_seconds: float = 0.0,
        *,
        track: bool = True,
    ) -> ProjectSnapshot | None:
        self.reads[project_id] += 1
        self.in_flight[project_id] += 1
        self.most_at_once[project_id] = max(
            self.most_at_once[project_id], self.in_flight[project_id]
        )
        try:
            await self.gate.wait()
            return await super().sync_project(
                project_id, first_check_delay_seconds, spread_seconds, track=track
            )
        finally:
            self.in_flight[project_id] -= 1


async def test_a_project_is_reconciled_by_one_worker_at_a_time() -> None:
    world = EngineWorld(store_type=GatedReads)
    store = world.store
    assert isinstance(store, GatedReads)
    busy = store.app.insert({"j1": "pending"})
    other = store.app.insert({"j2": "pending"})
    engine = world.engine(workers=4)
    engine.start()
    try:
        for _ in range(5):
            engine.project_changed(busy)
        await wait_until(lambda: store.in_flight[busy] == 1)
        for _ in range(5):  # while a worker holds it
            engine.project_changed(busy)
        engine.project_changed(other)
        await wait_until(lambda: store.in_flight[other] == 1)  # another worker, meanwhile
        assert store.in_flight[busy] == 1
        assert len(engine.queue) == 0  # the busy project waits as "dirty", not in the queue

        store.gate.set()
        await wait_until(lambda: engine.queue.in_progress == 0 and len(engine.queue) == 0)
    finally:
        await engine.stop()

    # Once for the first hints, once more for those that came while it was being read.
    assert store.reads == Counter({busy: 2, other: 1})
    assert store.most_at_once == Counter({busy: 1, other: 1})
    assert engine.stats.reconciles == 3
