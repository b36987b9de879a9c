"""A replica's heartbeat says what its engine shows — owner, feed, leases, when it last swept —
and a database that refuses it is logged once per outage, never raised into the service."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from reconciler.operator.heartbeat import HeartbeatRecorder
from reconciler.ports import FeedState, ReplicaHeartbeat, StoreUnavailable


@dataclass
class Stats:
    sweeps: int = 0


@dataclass
class EngineSeen:
    owner: str = "web-1:7:abc"
    feed_state: FeedState | None = "subscribed"
    leases_held: int = 0
    stats: Stats = field(default_factory=Stats)


@dataclass
class RecordingStore:
    beats: list[ReplicaHeartbeat] = field(default_factory=list)
    failing: bool = False
    forgotten: list[str] = field(default_factory=list)

    async def record_heartbeat(self, heartbeat: ReplicaHeartbeat) -> None:
        if self.failing:
            raise StoreUnavailable("database unreachable: ConnectionRefusedError")
        self.beats.append(heartbeat)

    async def forget_replica(self, owner: str) -> None:
        self.forgotten.append(owner)

    async def operator_overview(self, oldest_limit: int) -> Mapping[str, Any]:
        raise AssertionError("not read by the heartbeat")

    async def operator_project(self, project_id: UUID) -> Mapping[str, Any] | None:
        raise AssertionError("not read by the heartbeat")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_a_beat_carries_the_engine_state_and_notes_sweeps() -> None:
    engine, store, clock = EngineSeen(), RecordingStore(), Clock()
    recorder = HeartbeatRecorder(store, engine, interval_seconds=5, version="9.9", clock=clock)

    await recorder.beat_once()
    engine.leases_held, engine.feed_state = 7, "reconnecting"
    engine.stats.sweeps += 1
    clock.now += timedelta(seconds=5)
    await recorder.beat_once()
    clock.now += timedelta(seconds=5)
    await recorder.beat_once()  # no new sweep: the time of the last one is kept

    first, second, third = store.beats
    assert first == ReplicaHeartbeat(
        owner="web-1:7:abc",
        version="9.9",
        started_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        interval_seconds=5,
        feed_state="subscribed",
        leases_held=0,
        last_sweep_at=None,
    )
    assert (second.feed_state, second.leases_held) == ("reconnecting", 7)
    assert second.last_sweep_at == third.last_sweep_at == datetime(2026, 12, 2, 9, 0, 5, tzinfo=UTC)
    assert third.started_at == first.started_at


async def test_a_replica_without_a_feed_says_none() -> None:
    store = RecordingStore()
    await HeartbeatRecorder(store, EngineSeen(feed_state=None), interval_seconds=1).beat_once()
    assert store.beats[0].feed_state == "none"


async def test_a_refused_beat_is_logged_once_per_outage(caplog: pytest.LogCaptureFixture) -> None:
    store = RecordingStore(failing=True)
    recorder = HeartbeatRecorder(store, EngineSeen(), interval_seconds=1)

    with caplog.at_level(logging.INFO, logger="reconciler.operator.heartbeat"):
        results = [await recorder.beat_once() for _ in range(3)]
        store.failing = False
        results.append(await recorder.beat_once())

    assert results == [False, False, False, True]
    messages = [record.getMessage() for record in caplog.records]
    assert sum("could not record" in m for m in messages) == 1
    assert sum("recorded again" in m for m in messages) == 1


async def test_a_clean_stop_forgets_the_replica() -> None:
    store = RecordingStore()
    await HeartbeatRecorder(store, EngineSeen(), interval_seconds=1).forget()
    assert store.forgotten == ["web-1:7:abc"]
