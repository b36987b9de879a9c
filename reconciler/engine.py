"""The event-driven engine: hints in, one idempotent reconcile out (I5).

- The drainer takes what the app changed from the outbox its own transactions wrote (the one
  trigger on `projects`), every poll interval: each named project is re-read in the database,
  its new pending jobs tracked, results that came first applied.
- Workers take project ids from a keyed work queue (the realtime feed puts them there) and
  reconcile each the same way, sooner.
- The poller claims due jobs in batches under expiring leases (SKIP LOCKED, so replicas share
  the work, I6), asks Runware in batched requests, writes the round in one call, and schedules
  the rest with exponential backoff and jitter; it gives up on a job only when Runware itself
  kept saying "still working" past the give-up age (I11).
- The sweeper walks every project with unsettled jobs (our own rows, I10) at start-up, after
  every feed (re)subscription and periodically; the resyncer scans all of `projects`, slowly,
  once a day, for writes that bypassed the trigger.

All state lives in PostgreSQL (I4); this process can be killed at any instant.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from uuid import UUID

from reconciler.checker import ClipChecker
from reconciler.clips import Processing, decide_pending_job
from reconciler.clock import SYSTEM_CLOCK, Clock, wait_or_timeout
from reconciler.config import DEFAULTS
from reconciler.observability.context import log_context
from reconciler.observability.observer import NullObserver, Observer
from reconciler.ports import (
    ChangeFeed,
    FeedState,
    PollOutcome,
    Store,
    StoreRejected,
    StoreUnavailable,
    TrackedJob,
)
from reconciler.schedule import PollPolicy
from reconciler.workqueue import QueueShutDown, WorkQueue

log = logging.getLogger(__name__)

_RETRY_AFTER_STORE_ERROR_SECONDS = 1.0
_RECENT_SKIPS_KEPT = 100


def new_owner_id() -> str:
    """Unique per process start: a restarted process must not inherit its old leases."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class EnginePolicy:
    # Defaults of settings: their declarations (reconciler/config.py), written once there.
    workers: int = DEFAULTS.workers
    poll_interval_seconds: float = DEFAULTS.poll_interval_seconds
    claim_batch: int = DEFAULTS.claim_batch
    # Fairness across projects: at most this many of one project's due jobs per round.
    claim_per_project: int = DEFAULTS.claim_per_project
    # Unsettled jobs tracked per project; written to the database by `announce_limits`.
    max_pending_per_project: int = DEFAULTS.max_pending_per_project
    lease_seconds: float = DEFAULTS.lease_seconds
    sweep_on_start: bool = DEFAULTS.sweep_on_start
    sweep_interval_seconds: float = DEFAULTS.sweep_interval_seconds  # 0: no periodic sweep
    sweep_page_size: int = 500
    # Jobs a sweep finds untracked become due over this window, not all at once.
    sweep_spread_seconds: float = DEFAULTS.sweep_spread_seconds
    # Settled jobs and never-claimed parked results are forgotten after this (after sweeps).
    retention_seconds: float = DEFAULTS.retention_days * 86400
    purge_batch: int = 10_000
    # Outbox rows (projects the app changed) reconciled per call.
    drain_batch: int = 500
    # Full scan of `projects` for writes the trigger never saw; 0: never. Throttled: a page,
    # then a pause, so it never competes with the app for long.
    resync_interval_seconds: float = DEFAULTS.resync_interval_seconds
    resync_page_size: int = 500
    resync_pause_seconds: float = 0.2
    poll: PollPolicy = field(
        default_factory=lambda: PollPolicy(
            backoff_base_seconds=DEFAULTS.backoff_base_seconds,
            backoff_cap_seconds=DEFAULTS.backoff_cap_seconds,
            give_up_after_seconds=DEFAULTS.give_up_seconds,
        )
    )


@dataclass
class EngineStats:
    reconciles: int = 0
    jobs_polled: int = 0
    results_written: int = 0
    gave_up: int = 0
    sweeps: int = 0
    resyncs: int = 0
    changes_drained: int = 0
    errors: int = 0
    # Jobs whose check failed for our side's reasons (Runware unreachable, rate-limited, key
    # rejected, an answer we could not use): they stay pending (I11).
    check_failures: int = 0
    # Projects a sweep, reconcile or poll round skipped because the database refused them.
    projects_skipped: int = 0
    lease_renewal_failures: int = 0


@dataclass(frozen=True)
class SkippedProject:
    project_id: UUID
    reason: str


class Engine:
    """Implements `FeedHints`, so a feed hands its hints straight to the engine."""

    def __init__(
        self,
        store: Store,
        checker: ClipChecker,
        *,
        policy: EnginePolicy,
        feed: ChangeFeed | None = None,
        owner: str | None = None,
        rng: random.Random | None = None,
        observer: Observer | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._checker = checker
        self._check_policy = checker.policy
        self._policy = policy
        self._feed = feed
        self.owner = owner or new_owner_id()
        self._rng = rng or random.Random()
        self._observer = observer or NullObserver()
        # Every wait of the engine's own (intervals, pauses, lease renewal): tests advance it.
        self._clock = clock
        self.queue: WorkQueue[UUID] = WorkQueue()
        self.stats = EngineStats()
        # Jobs claimed by this process in the current poll round and not yet finished (a gauge
        # for metrics; the leases themselves live in the database).
        self.leases_held = 0
        # Why the last poll round could not check jobs (None once Runware answers again): shown
        # by /readyz and the logs, so a clip that stays pending for our reasons is loud.
        self.check_trouble: str | None = None
        # The most recent projects skipped with their reasons (the metric counts them all).
        self.recent_skips: deque[SkippedProject] = deque(maxlen=_RECENT_SKIPS_KEPT)
        self._wake_poller = asyncio.Event()
        self._more_due = False
        self._wake_drainer = asyncio.Event()
        self._sweep_requested = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._workers: list[asyncio.Task[None]] = []

    # --- FeedHints ------------------------------------------------------------------------------

    def project_changed(self, project_id: UUID) -> None:
        # Reconciled at once (realtime also sees writes that bypassed the outbox trigger), and
        # the outbox looked at now rather than at the next interval.
        self.queue.add(project_id)
        self._wake_drainer.set()

    def resync(self) -> None:
        self._sweep_requested.set()

    @property
    def feed_state(self) -> FeedState | None:
        return self._feed.state if self._feed is not None else None

    @property
    def feed(self) -> ChangeFeed | None:
        return self._feed

    # --- Reconciling one project ----------------------------------------------------------------

    async def reread_project(self, project_id: UUID, spread_seconds: float = 0.0) -> None:
        """Re-read one project in the database (I5): results that came first applied, every
        pending job tracked, a new one first due after the first-check delay plus a random
        share of `spread_seconds`. Timed and counted: workers and sweeps both come here."""
        started = time.perf_counter()
        try:
            snapshot = await self._store.sync_project(
                project_id, self._check_policy.first_check_delay_seconds, spread_seconds
            )
        finally:
            self._observer.reconcile_finished(time.perf_counter() - started)
        self.stats.reconciles += 1
        if snapshot is not None and snapshot.pending_jobs:
            # Fresh jobs may be due at once (no first-check delay): let the poller look now.
            self._wake_poller.set()

    async def _worker(self) -> None:
        while True:
            try:
                project_id = await self.queue.get()
            except QueueShutDown:
                return
            with log_context(project_id=project_id):
                try:
                    await self.reread_project(project_id)
                except StoreRejected as error:
                    # The same input gets the same refusal: retrying would spin. Sweeps and the
                    # resync look at the project again.
                    self._skip(project_id, str(error))
                except StoreUnavailable as error:
                    self.stats.errors += 1
                    log.warning("reconcile %s failed, will retry: %s", project_id, error)
                    self._retry_later(project_id)
                except Exception:
                    self.stats.errors += 1
                    log.exception("reconcile %s failed, will retry", project_id)
                    self._retry_later(project_id)
                finally:
                    self.queue.done(project_id)

    def _skip(self, project_id: UUID, reason: str) -> None:
        """One project the database refuses must not stall anything else (I10)."""
        self.stats.projects_skipped += 1
        self.recent_skips.append(SkippedProject(project_id, reason))
        log.warning("project %s skipped, the database refused it: %s", project_id, reason)

    def _retry_later(self, project_id: UUID) -> None:
        delay = _RETRY_AFTER_STORE_ERROR_SECONDS * (1 + self._rng.random())
        asyncio.get_running_loop().call_later(delay, self.queue.add, project_id)

    # --- Polling due jobs -----------------------------------------------------------------------

    async def poll_once(self) -> int:
        """One round: claim due jobs, check them with Runware, write and reschedule.

        Returns how many jobs were claimed (0 when none was due)."""
        policy = self._policy
        started = time.perf_counter()
        jobs = await self._store.claim_due_jobs(
            self.owner,
            policy.claim_batch,
            policy.lease_seconds,
            per_project=policy.claim_per_project,
        )
        # A full batch, or a project that gave all it may give in one round: more may be due
        # right now, so the poller goes again without waiting.
        per_project = Counter(job.project_id for job in jobs)
        self._more_due = len(jobs) >= policy.claim_batch or any(
            n >= policy.claim_per_project for n in per_project.values()
        )
        if not jobs:
            return 0  # not a round: timing idle checks would drown the rounds that did work
        self.leases_held += len(jobs)
        try:
            async with self._renewing_leases():
                await self._check_claimed(jobs)
        finally:
            self.leases_held -= len(jobs)
            self._observer.poll_round_finished(time.perf_counter() - started)
        self.stats.jobs_polled += len(jobs)
        return len(jobs)

    async def _check_claimed(self, jobs: list[TrackedJob]) -> None:
        # A job id held by several projects is asked about once.
        statuses = await self._checker.statuses(list(dict.fromkeys(job.job_id for job in jobs)))
        poll = self._policy.poll
        outcomes: list[PollOutcome] = []
        trouble: str | None = None
        answered = False
        for job in jobs:
            decision = decide_pending_job(
                job.job_id,
                statuses,
                job_age_seconds=job.age_seconds,
                unknown_task_grace_seconds=self._check_policy.unknown_task_grace_seconds,
                url_policy=self._check_policy.url_policy,
                give_up=poll,
            )
            if decision.check_failed:
                trouble = decision.error
                self.stats.check_failures += 1
            else:
                answered = True
            if decision.gave_up:
                self.stats.gave_up += 1
            status = statuses.get(job.job_id)
            # Also used when a result cannot be written (the database refused the project).
            progress = status.progress if isinstance(status, Processing) else None
            delay = poll.next_check_in(
                job.attempts, self._rng, age_seconds=job.age_seconds, progress=progress
            )
            outcomes.append(
                PollOutcome(
                    job.project_id, job.job_id, decision.write, decision.error, delay, progress
                )
            )
        self._note_check_trouble(trouble if not answered else None, trouble)
        # One call writes the round: results per project (each on its own), reasons, next
        # checks, leases released.
        round_outcome = await self._store.finish_round(self.owner, outcomes)
        self.stats.results_written += sum(len(c) for c in round_outcome.changed.values())
        for project_id, reason in round_outcome.refused.items():
            self._skip(project_id, reason)  # the other projects' results still landed

    def _note_check_trouble(self, trouble: str | None, last_failure: str | None) -> None:
        """`trouble`: set when no job of the round got an answer from Runware."""
        if trouble is not None:
            if self.check_trouble is None:  # once per episode, not once per round
                log.warning("Runware checks failing, clips stay pending: %s", trouble)
        else:
            if self.check_trouble is not None:
                log.info("Runware checks answer again")
            if last_failure is not None:
                log.warning("some jobs could not be checked, they stay pending: %s", last_failure)
        self.check_trouble = trouble

    @contextlib.asynccontextmanager
    async def _renewing_leases(self) -> AsyncIterator[None]:
        """Keep this process's leases alive while a round takes long (slow Runware).

        A failed renewal is logged, counted and tried again at the next tick: it must neither
        stop renewing nor change the round's own outcome."""

        async def renew() -> None:
            while True:
                await self._clock.sleep(self._policy.lease_seconds / 3)
                try:
                    await self._store.renew_leases(self.owner, self._policy.lease_seconds)
                except Exception as error:
                    self.stats.lease_renewal_failures += 1
                    log.warning("could not renew leases, trying again: %s", error)

        renewer = asyncio.create_task(renew(), name="lease-renewer")
        try:
            yield
        finally:
            renewer.cancel()
            await asyncio.gather(renewer, return_exceptions=True)

    async def _poller(self) -> None:
        while True:
            try:
                claimed = await self.poll_once()
            except (StoreUnavailable, StoreRejected) as error:
                self.stats.errors += 1
                log.warning("poll round failed: %s", error)
                claimed = 0
            except Exception:
                self.stats.errors += 1
                log.exception("poll round failed")
                claimed = 0
            if claimed and self._more_due:
                continue  # more may be due right now
            interval = self._policy.poll_interval_seconds * (0.75 + self._rng.random() / 2)
            await wait_or_timeout(self._clock, self._wake_poller, interval)
            self._wake_poller.clear()

    # --- Draining what the app changed ---------------------------------------------------------

    async def announce_limits(self) -> None:
        """Write the per-project tracking limit where SQL reads it (every path that tracks
        jobs, webhooks' drains included, goes through one SQL function); logs how many
        clips are over it."""
        over = await self._store.set_tracking_limits(self._policy.max_pending_per_project)
        if over:
            log.warning(
                "%d pending clips are not tracked: their project has more than %d pending jobs"
                " (RECONCILER_MAX_PENDING_PER_PROJECT)",
                over,
                self._policy.max_pending_per_project,
            )

    async def _try_announcing_limits(self) -> bool:
        """Whether the limit was written; a failure never holds back the drain itself."""
        try:
            await self.announce_limits()
        except Exception as error:
            self.stats.errors += 1
            log.warning("could not write the per-project limit, trying again: %s", error)
            return False
        return True

    async def drain_once(self) -> int:
        """Reconcile the projects the outbox names, batch after batch, until it is empty (or
        holds only rows other replicas are draining); returns how many rows were taken."""
        policy = self._policy
        taken = 0
        while True:
            # The app's own writes are first due after the first-check delay, no spread: they
            # arrive spread out already, and the global Runware rate cap bounds any burst. The
            # spread is for what a sweep or resync discovers at once (after a restart).
            outcome = await self._store.drain_changes(
                policy.drain_batch, self._check_policy.first_check_delay_seconds, 0.0
            )
            taken += outcome.rows
            for project_id, reason in outcome.refused.items():
                self._skip(project_id, reason)
            if outcome.rows < policy.drain_batch:
                break
        if taken:
            self.stats.changes_drained += taken
            self._wake_poller.set()  # new jobs may be due at once (no first-check delay)
        return taken

    async def _drainer(self) -> None:
        """The app's changes arrive through the outbox its own transactions wrote (I5): looked
        at every poll interval, which costs one empty read when nothing changed. The limit
        is written first (tried again each interval until the database takes it); until then
        the value the database holds (the last one written, else its default) applies."""
        announced = False
        while True:
            if not announced:
                announced = await self._try_announcing_limits()
            try:
                await self.drain_once()
            except (StoreUnavailable, StoreRejected) as error:
                self.stats.errors += 1
                log.warning("draining changes failed, retrying: %s", error)
            except Exception:
                self.stats.errors += 1
                log.exception("draining changes failed")
            interval = self._policy.poll_interval_seconds * (0.75 + self._rng.random() / 2)
            await wait_or_timeout(self._clock, self._wake_drainer, interval)
            self._wake_drainer.clear()

    # --- Sweeping -------------------------------------------------------------------------------

    async def sweep_once(self, on_page: Callable[[int], None] | None = None) -> int:
        """Drain the outbox, then re-read every project with unsettled jobs, page by page
        (our own rows: the cost follows what is pending, not the size of `projects`); returns
        how many projects were re-read.

        Each project goes through `reread_project`, as a worker's would, but awaited here
        rather than queued: `reconciler sweep` runs no workers and reports progress per page,
        and a sweep of thousands of projects must not crowd the hints out of the queue."""
        await self.drain_once()
        policy = self._policy
        after: UUID | None = None
        count = 0
        while True:
            page = await self._store.projects_with_pending(after, policy.sweep_page_size)
            if not page:
                break
            for project_id in page:
                try:
                    await self.reread_project(project_id, policy.sweep_spread_seconds)
                except StoreRejected as error:
                    # Restarting the sweep would meet the same project again, forever (I10).
                    self._skip(project_id, str(error))
            count += len(page)
            after = page[-1]
            if on_page is not None:
                on_page(len(page))
        self.stats.sweeps += 1
        self._wake_poller.set()
        return count

    async def resync_once(
        self, on_page: Callable[[int], None] | None = None, *, pause_seconds: float | None = None
    ) -> int:
        """Scan every project in keyset pages and reconcile those with pending clips: catches
        writes that bypassed the trigger (replication role `replica`, restores). Pauses between
        pages (default: the policy's) so it never holds the database for long; returns how
        many projects were scanned."""
        policy = self._policy
        pause = policy.resync_pause_seconds if pause_seconds is None else pause_seconds
        after: UUID | None = None
        scanned = 0
        while True:
            page = await self._store.resync_page(
                after,
                policy.resync_page_size,
                self._check_policy.first_check_delay_seconds,
                policy.sweep_spread_seconds,
            )
            scanned += page.scanned
            for project_id, reason in page.refused.items():
                self._skip(project_id, reason)
            if on_page is not None:
                on_page(page.scanned)
            if page.last is None:
                break
            after = page.last
            if pause > 0:
                await self._clock.sleep(pause)
        self.stats.resyncs += 1
        self._wake_poller.set()
        return scanned

    async def _resyncer(self) -> None:
        interval = self._policy.resync_interval_seconds
        while True:
            # The migration back-fills what exists when it runs: the first resync can wait a
            # whole interval. Jittered, so replicas started together do not scan together.
            await self._clock.sleep(interval * (0.9 + self._rng.random() / 5))
            try:
                scanned = await self.resync_once()
                log.info("resync: scanned %d projects", scanned)
            except (StoreUnavailable, StoreRejected) as error:
                self.stats.errors += 1
                log.warning("resync failed, trying again next interval: %s", error)
            except Exception:
                self.stats.errors += 1
                log.exception("resync failed")

    async def _sweeper(self) -> None:
        if self._policy.sweep_on_start:
            self._sweep_requested.set()
        interval = self._policy.sweep_interval_seconds
        while True:
            timeout = interval * (0.9 + self._rng.random() / 5) if interval > 0 else None
            await wait_or_timeout(self._clock, self._sweep_requested, timeout)
            self._sweep_requested.clear()
            try:
                swept = await self.sweep_once()
                jobs, parked = await self._store.purge(
                    self._policy.retention_seconds, self._policy.purge_batch
                )
                archived_clips, copies = await self._store.purge_archive(
                    self._policy.retention_seconds, self._policy.purge_batch
                )
                log.info(
                    "sweep: %d projects with pending clips; forgot %d settled jobs, %d"
                    " parked results and %d finished archive rows (%d copies) past retention",
                    swept,
                    jobs,
                    parked,
                    archived_clips + copies,
                    copies,
                )
            except (StoreUnavailable, StoreRejected) as error:
                self.stats.errors += 1
                log.warning("sweep failed, retrying: %s", error)
                await self._clock.sleep(_RETRY_AFTER_STORE_ERROR_SECONDS)
                self._sweep_requested.set()
            except Exception:
                self.stats.errors += 1
                log.exception("sweep failed")

    # --- Lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._worker(), name=f"reconcile-worker-{i}")
            for i in range(self._policy.workers)
        ]
        self._tasks = [
            asyncio.create_task(self._poller(), name="poller"),
            asyncio.create_task(self._drainer(), name="drainer"),
            asyncio.create_task(self._sweeper(), name="sweeper"),
        ]
        if self._policy.resync_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self._resyncer(), name="resyncer"))
        if self._feed is not None:
            self._tasks.append(asyncio.create_task(self._feed.run(self), name="change-feed"))

    async def stop(self, deadline_seconds: float = 10.0) -> None:
        """Stop taking work, let workers finish within the deadline, release leases."""
        self.queue.shut_down()
        for task in self._tasks:
            task.cancel()
        pending = [*self._tasks, *self._workers]
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=deadline_seconds)
            for task in still_running:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks, self._workers = [], []
        try:
            released = await asyncio.wait_for(self._store.release_leases(self.owner), 5.0)
            log.info("engine stopped; released %d leases", released)
        except (StoreUnavailable, TimeoutError) as error:
            # They expire by themselves; another replica takes the jobs over then.
            log.warning("could not release leases: %s", error)
