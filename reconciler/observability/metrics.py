"""Prometheus metrics for one app instance, in a registry of its own.

A registry per instance, not prometheus_client's global one: tests (and benchmarks) run many
apps in one process, and the global registry refuses a second metric of the same name.

Two kinds of series:
- events the service reports through `Observer` (webhook outcomes, Runware requests, how long
  reconciles and poll rounds take) go into counters and histograms here;
- everything that already exists as a number (`EngineStats`, the queue, leases held, the
  feed's state and counters, pending jobs in the database) is read when scraped, through the
  read-only protocols below (`EngineReadings`, which the engine satisfies, and
  `PendingStatsSource`, which the store does): this module imports neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Protocol, get_args, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import Metric

from reconciler import service_version
from reconciler.observability.pending import PendingStatsCache, PendingStatsSource
from reconciler.ports import TASK_OUTCOMES, ArchiveStats, FeedState, WebhookOutcome

PREFIX = "reconciler_"
# The classic text format (0.0.4), which every Prometheus version scrapes; the metric names
# need none of what the newer 1.0.0 variant adds.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Reconciling a project is one or two SQL calls; a poll round includes Runware's answer time.
_RECONCILE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_POLL_ROUND_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class EngineCounts(Protocol):
    """The engine's running totals (`EngineStats`), as metrics read them."""

    @property
    def reconciles(self) -> int: ...
    @property
    def jobs_polled(self) -> int: ...
    @property
    def results_written(self) -> int: ...
    @property
    def gave_up(self) -> int: ...
    @property
    def sweeps(self) -> int: ...
    @property
    def changes_drained(self) -> int: ...
    @property
    def resyncs(self) -> int: ...
    @property
    def errors(self) -> int: ...
    @property
    def check_failures(self) -> int: ...
    @property
    def projects_skipped(self) -> int: ...
    @property
    def lease_renewal_failures(self) -> int: ...


class FeedReadings(Protocol):
    """What every change feed shows: its state."""

    @property
    def state(self) -> FeedState: ...


@runtime_checkable
class FeedCounters(Protocol):
    """Counters only some feeds keep (the realtime feed does); reported when present."""

    @property
    def rebuilds(self) -> int: ...
    @property
    def events_received(self) -> int: ...
    @property
    def callback_errors(self) -> int: ...
    @property
    def events_dropped(self) -> int: ...


class EngineReadings(Protocol):
    """The read-only view of a running engine that metrics need (`engine.Engine` has it)."""

    @property
    def stats(self) -> EngineCounts: ...
    @property
    def queue(self) -> Sized: ...
    @property
    def leases_held(self) -> int: ...
    @property
    def check_trouble(self) -> str | None: ...
    @property
    def feed(self) -> FeedReadings | None: ...


class ServiceMetrics:
    """The `Observer` the app wires in, and the source of `GET /metrics`."""

    def __init__(self, *, pending_cache_seconds: float = 5.0) -> None:
        self.registry = CollectorRegistry()
        self._pending_cache_seconds = pending_cache_seconds
        self._webhooks = Counter(
            f"{PREFIX}webhooks",
            "Webhook outcomes: per task for accepted bodies ("
            + ", ".join(TASK_OUTCOMES)
            + "), per request for refused ones.",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in WebhookOutcome:
            self._webhooks.labels(outcome)  # every outcome present from the start, at 0
        self._runware_requests = Counter(
            f"{PREFIX}runware_requests",
            'HTTP requests to Runware by status code ("error": no answer, e.g. network error).',
            ["status"],
            registry=self.registry,
        )
        self._reconcile = Histogram(
            f"{PREFIX}reconcile_duration_seconds",
            "Time to reconcile one project (re-read, apply parked results, track jobs).",
            buckets=_RECONCILE_BUCKETS,
            registry=self.registry,
        )
        self._poll_round = Histogram(
            f"{PREFIX}poll_round_duration_seconds",
            "Time of a poll round that claimed jobs: claim, ask Runware, write, reschedule.",
            buckets=_POLL_ROUND_BUCKETS,
            registry=self.registry,
        )
        self._state = _ScrapeTimeCollector()
        self.registry.register(self._state)
        # Which version answers (the package metadata, written once in pyproject.toml): a
        # dashboard or an alert can tell replicas of different releases apart during a rollout.
        build_info = Gauge(
            f"{PREFIX}build_info",
            "Always 1; its version label is this replica's release.",
            ["version"],
            registry=self.registry,
        )
        build_info.labels(service_version()).set(1)

    # --- Observer ---------------------------------------------------------------------------

    def runware_request(self, status_code: int | None) -> None:
        self._runware_requests.labels("error" if status_code is None else str(status_code)).inc()

    def reconcile_finished(self, seconds: float) -> None:
        self._reconcile.observe(seconds)

    def poll_round_finished(self, seconds: float) -> None:
        self._poll_round.observe(seconds)

    def webhook(self, outcome: WebhookOutcome, count: int = 1) -> None:
        if count:
            self._webhooks.labels(outcome).inc(count)

    # --- Scraping ---------------------------------------------------------------------------

    def watch(self, store: PendingStatsSource, engine: EngineReadings | None) -> None:
        """Start reporting the state of these services (called once they are open); no engine
        series without an engine (RECONCILER_ENGINE=0)."""
        self._state.engine = engine
        self._state.pending = PendingStatsCache(store, max_age_seconds=self._pending_cache_seconds)

    def watch_archive(self, worker: ArchiveReadings) -> None:
        """Report the archive worker's counts and the backlog it reads (archiving on)."""
        self.registry.register(_ArchiveCollector(worker))

    async def render(self) -> bytes:
        """The exposition text (`CONTENT_TYPE`); reads the database first (cached), then
        everything else."""
        if self._state.pending is not None:
            await self._state.pending.refresh()
        return generate_latest(self.registry)


class _ScrapeTimeCollector:
    """Series read from the running services at scrape time (no describe(): names vary with
    what runs, e.g. no engine series with RECONCILER_ENGINE=0)."""

    def __init__(self) -> None:
        self.engine: EngineReadings | None = None
        self.pending: PendingStatsCache | None = None

    def collect(self) -> Iterable[Metric]:
        if self.pending is not None:
            yield from _pending_series(self.pending)
        engine = self.engine
        if engine is not None:
            yield from _engine_series(engine)
            yield from _feed_series(engine)


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"{PREFIX}{name}", documentation, value=value)


def _pending_series(pending: PendingStatsCache) -> Iterator[Metric]:
    yield _counter(
        "scrape_errors",
        "Scrapes that could not read pending jobs from the database (last values kept).",
        pending.errors,
    )
    if pending.last is None:
        return  # never read yet: no value is better than a made-up 0
    yield _gauge(
        "pending_jobs", "Tracked jobs not yet settled, all replicas.", pending.last.pending
    )
    yield _gauge(
        "oldest_pending_job_age_seconds",
        "Age of the oldest tracked job not yet settled (0 when none).",
        pending.last.oldest_age_seconds,
    )
    yield _gauge(
        "untrackable_clips",
        "Pending clips not tracked, never polled: key not a Runware task id (a UUID), or"
        " over RECONCILER_MAX_PENDING_PER_PROJECT.",
        pending.last.untrackable,
    )
    yield _gauge(
        "changes_waiting",
        "Projects changed by the app and not yet looked at (outbox rows not drained).",
        pending.last.changes_waiting,
    )


def _engine_series(engine: EngineReadings) -> Iterator[Metric]:
    stats = engine.stats
    yield _gauge("queue_depth", "Projects waiting in the work queue.", len(engine.queue))
    yield _gauge(
        "leases_held", "Jobs this process has claimed and not yet finished.", engine.leases_held
    )
    yield _counter("reconciles", "Projects reconciled.", stats.reconciles)
    yield _counter("jobs_polled", "Jobs checked with Runware by the poller.", stats.jobs_polled)
    yield _counter(
        "results_written", "Clips the poller moved away from pending.", stats.results_written
    )
    yield _counter("gave_up", "Clips failed after the give-up age.", stats.gave_up)
    yield _counter("sweeps", "Sweeps over every project with unsettled jobs.", stats.sweeps)
    yield _counter(
        "changes_drained", "Outbox rows (app changes of clips) taken.", stats.changes_drained
    )
    yield _counter(
        "resyncs", "Full scans of projects for writes that bypassed the trigger.", stats.resyncs
    )
    yield _counter("engine_errors", "Reconciles, poll rounds and sweeps that failed.", stats.errors)
    yield _counter(
        "check_failures",
        "Jobs whose Runware check failed on our side (unreachable, rate-limited, key rejected,"
        " unusable answer); they stay pending.",
        stats.check_failures,
    )
    yield _gauge(
        "runware_checks_failing",
        "1 while the last poll round got no usable answer from Runware for any job.",
        1.0 if engine.check_trouble is not None else 0.0,
    )
    yield _counter(
        "projects_skipped",
        "Projects a sweep, reconcile or poll round skipped because the database refused them.",
        stats.projects_skipped,
    )
    yield _counter(
        "lease_renewal_failures",
        "Lease renewals that failed (retried at the next tick).",
        stats.lease_renewal_failures,
    )


def _feed_series(engine: EngineReadings) -> Iterator[Metric]:
    feed = engine.feed
    if feed is None:
        return
    states = GaugeMetricFamily(
        f"{PREFIX}feed_state", "The change feed's state: 1 for the current one.", labels=["state"]
    )
    for state in get_args(FeedState):
        states.add_metric([state], 1.0 if feed.state == state else 0.0)
    yield states
    if isinstance(feed, FeedCounters):
        yield _counter(
            "feed_rebuilds",
            "Times the change feed threw its connection away and rebuilt it.",
            feed.rebuilds,
        )
        yield _counter(
            "feed_events", "Change notifications the feed received.", feed.events_received
        )
        yield _counter(
            "feed_callback_errors",
            "Change notifications or hints that failed and were skipped.",
            feed.callback_errors,
        )
        yield _counter(
            "feed_events_dropped",
            "Change notifications lost to a full queue (each run of them ends in a sweep).",
            feed.events_dropped,
        )


# --- Archiving (RECONCILER_ARCHIVE) -------------------------------------------------------------


class ArchiveCountsReadings(Protocol):
    @property
    def outcomes(self) -> Mapping[str, int]: ...
    @property
    def bytes_archived(self) -> int: ...


class ArchiveReadings(Protocol):
    """The read-only view of the archive worker that metrics need (`ArchiveWorker` has it)."""

    @property
    def counts(self) -> ArchiveCountsReadings: ...
    @property
    def stats(self) -> ArchiveStats | None: ...
    @property
    def trouble(self) -> str | None: ...


class _ArchiveCollector:
    def __init__(self, worker: ArchiveReadings) -> None:
        self._worker = worker

    def collect(self) -> Iterable[Metric]:
        counts = self._worker.counts
        outcomes = CounterMetricFamily(
            f"{PREFIX}archive_tasks",
            "Archive attempts by outcome: archived, superseded (the app changed the clip),"
            " given_up (the clip keeps its Runware URL), retried, not_queued (another replica"
            " finished it).",
            labels=["outcome"],
        )
        for outcome, value in sorted(counts.outcomes.items()):
            outcomes.add_metric([outcome], value)
        yield outcomes
        yield _counter(
            "archive_bytes", "Bytes of video copied into Storage.", counts.bytes_archived
        )
        yield _gauge(
            "archive_paused",
            "1 while the bucket cannot be used (results stay queued).",
            1.0 if self._worker.trouble is not None else 0.0,
        )
        stats = self._worker.stats
        if stats is None:
            return
        yield _gauge(
            "archive_backlog", "Results waiting to be archived, all replicas.", stats.backlog
        )
        yield _gauge(
            "archive_oldest_unarchived_age_seconds",
            "Age of the oldest result waiting to be archived (0 when none).",
            stats.oldest_age_seconds,
        )
