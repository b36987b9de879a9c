"""Each serving replica says every few seconds that it is alive, and how its change feed,
leases and sweeps are doing, so the operator sees every replica in one place.

Read-only towards the engine: it reads the engine's public state (owner, feed state, leases,
sweep counter) and writes one row of its own. A heartbeat that cannot be written is logged once
per outage and tried again at the next beat; it never disturbs the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Protocol

from reconciler import service_version
from reconciler.ports import (
    FeedState,
    HeartbeatStore,
    ReplicaHeartbeat,
    StoreRejected,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

_FORGET_ON_STOP_SECONDS = 5.0


class SweepCount(Protocol):
    @property
    def sweeps(self) -> int: ...


class EngineState(Protocol):
    """What the heartbeat reads of the engine: its public, read-only state."""

    @property
    def owner(self) -> str: ...

    @property
    def feed_state(self) -> FeedState | None: ...

    @property
    def leases_held(self) -> int: ...

    @property
    def stats(self) -> SweepCount: ...


def _now() -> datetime:
    return datetime.now(UTC)


class HeartbeatRecorder:
    """Builds and records this replica's heartbeats."""

    def __init__(
        self,
        store: HeartbeatStore,
        engine: EngineState,
        *,
        interval_seconds: float,
        version: str | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._store = store
        self._engine = engine
        self._interval = interval_seconds
        self._version = version if version is not None else service_version()
        self._clock = clock
        self._started_at = clock()
        # The engine counts sweeps; the heartbeat notes when it saw the count move (to within
        # one interval), so the engine needs no clock of its own for this.
        self._sweeps_seen = engine.stats.sweeps
        self._last_sweep_at: datetime | None = None
        self._failing = False

    @property
    def owner(self) -> str:
        return self._engine.owner

    def current(self) -> ReplicaHeartbeat:
        sweeps = self._engine.stats.sweeps
        if sweeps != self._sweeps_seen:
            self._sweeps_seen = sweeps
            self._last_sweep_at = self._clock()
        return ReplicaHeartbeat(
            owner=self._engine.owner,
            version=self._version,
            started_at=self._started_at,
            interval_seconds=self._interval,
            feed_state=self._engine.feed_state or "none",
            leases_held=self._engine.leases_held,
            last_sweep_at=self._last_sweep_at,
        )

    async def beat_once(self) -> bool:
        """Record one heartbeat; False (logged once per outage) when it could not be."""
        try:
            await self._store.record_heartbeat(self.current())
        except (StoreUnavailable, StoreRejected) as error:
            if not self._failing:
                log.warning("could not record this replica's heartbeat: %s", error)
            self._failing = True
            return False
        if self._failing:
            log.info("replica heartbeat recorded again")
        self._failing = False
        return True

    async def run(self) -> None:
        """Beat until cancelled."""
        while True:
            await self.beat_once()
            await asyncio.sleep(self._interval)

    async def forget(self) -> None:
        """A clean stop removes the row at once; a crash leaves it to age out."""
        try:
            await asyncio.wait_for(self._store.forget_replica(self.owner), _FORGET_ON_STOP_SECONDS)
        except (StoreUnavailable, StoreRejected, TimeoutError) as error:
            log.warning("could not remove this replica's heartbeat: %s", error)


@contextlib.asynccontextmanager
async def heartbeating(
    store: HeartbeatStore, engine: EngineState, *, interval_seconds: float
) -> AsyncIterator[HeartbeatRecorder]:
    """Record heartbeats in the background for as long as the block runs."""
    recorder = HeartbeatRecorder(store, engine, interval_seconds=interval_seconds)
    task = asyncio.create_task(recorder.run(), name="replica-heartbeat")
    try:
        yield recorder
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await recorder.forget()
