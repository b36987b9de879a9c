"""Every counter the realtime feed keeps reaches `GET /metrics`; a feed that keeps none (or an
engine without a feed) shows only its state."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.observability.metrics import ServiceMetrics
from reconciler.ports import FeedState, PendingStats
from tests.scrape import parse


@dataclass
class Stats:
    reconciles: int = 0
    jobs_polled: int = 0
    results_written: int = 0
    gave_up: int = 0
    sweeps: int = 0
    changes_drained: int = 0
    resyncs: int = 0
    errors: int = 0
    check_failures: int = 0
    projects_skipped: int = 0
    lease_renewal_failures: int = 0


@dataclass
class CountingFeed:
    state: FeedState = "subscribed"
    rebuilds: int = 2
    events_received: int = 30
    callback_errors: int = 4
    events_dropped: int = 5


@dataclass
class PlainFeed:
    state: FeedState = "reconnecting"


@dataclass
class Engine:
    feed: CountingFeed | PlainFeed | None
    stats: Stats = field(default_factory=Stats)
    queue: list[object] = field(default_factory=list)
    leases_held: int = 0
    check_trouble: str | None = None


class Store:
    async def pending_stats(self) -> PendingStats:
        return PendingStats(pending=0, oldest_age_seconds=0.0)


async def _scrape(feed: CountingFeed | PlainFeed | None) -> dict[str, float]:
    metrics = ServiceMetrics()
    metrics.watch(Store(), Engine(feed))
    scraped = parse((await metrics.render()).decode())
    return {name: scraped.total(name) for name in scraped.names() if "feed" in name}


async def test_the_realtime_feeds_counters_are_exported() -> None:
    assert await _scrape(CountingFeed()) == {
        "reconciler_feed_state": 1.0,
        "reconciler_feed_rebuilds_total": 2,
        "reconciler_feed_events_total": 30,
        "reconciler_feed_callback_errors_total": 4,
        "reconciler_feed_events_dropped_total": 5,
    }


async def test_a_feed_without_counters_shows_its_state_only() -> None:
    assert await _scrape(PlainFeed()) == {"reconciler_feed_state": 1.0}
    assert await _scrape(None) == {}
