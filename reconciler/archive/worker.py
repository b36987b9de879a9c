"""The archive loop: claim queued tasks, copy each video into Storage, finish the task.

Tasks are rows (`reconciler.archive_tasks`, one copy per source URL, however many clips hold
it), queued by SQL in the same transaction that wrote the Runware URL; this process only works
them off, and SQL swaps every clip waiting for the URL when the copy is done. `concurrency`
slots each claim one task at a time under a lease (renewed while the copy runs, released on a
clean stop, left to expire on a kill -9, after which any replica takes the task again: the
upload is idempotent, to the same path). A copy that fails is retried with backoff from the
task's attempts, or given up when the failure is permanent (source gone, too large, not a
video, an object Storage refuses) or the attempts are used up; the clips then keep their
Runware URL. Storage trouble is transient: our own failures never give a video up early (I11).
Each attempt runs under a deadline and a minimum throughput (`AttemptLimits`): one cut for
either is a failed attempt like any other, so a trickling origin holds a slot for one window,
not for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from reconciler.archive.paths import ObjectPathError, ObjectPathTemplate, public_object_url
from reconciler.archive.transfer import (
    DEFAULT_ATTEMPT_LIMITS,
    ArchiveFailure,
    AttemptLimits,
    Downloaded,
    Progress,
    StorageUploader,
    download,
    within_limits,
)
from reconciler.backoff import Backoff
from reconciler.clips import UrlPolicy
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.engine import new_owner_id
from reconciler.observability.context import log_context
from reconciler.ports import (
    ArchivedObject,
    ArchiveStats,
    ArchiveStore,
    ArchiveTask,
    StoreRejected,
    StoreUnavailable,
)

log = logging.getLogger(__name__)

# How a loop that cannot reach the database or Storage waits between tries.
_LOOP_BACKOFF = Backoff(base=1.0, cap=30.0)
_TASK_BACKOFF = Backoff(base=30.0, cap=3600.0)


@dataclass(frozen=True)
class ArchivePolicy:
    supabase_url: str
    bucket: str
    path: ObjectPathTemplate
    max_bytes: int = 2 * 1024**3
    concurrency: int = 2
    lease_seconds: float = 300.0
    max_attempts: int = 10
    # Between attempts of one task: from `retry_base_seconds`, doubling, capped.
    retry: Backoff = _TASK_BACKOFF
    # How long an idle slot waits before asking for tasks again.
    idle_seconds: float = 2.0
    # How often the backlog (for metrics) is read from the database.
    stats_interval_seconds: float = 10.0
    # One attempt's deadline and minimum throughput.
    limits: AttemptLimits = DEFAULT_ATTEMPT_LIMITS


@dataclass
class ArchiveCounts:
    """Running totals of this process, read by metrics at scrape time."""

    # Finished tasks by what happened: archived, superseded, given_up; `retried` counts
    # attempts that failed and were put back; `lost` finishes another replica had done.
    outcomes: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("archived", "superseded", "given_up", "retried", "not_queued"), 0
        )
    )
    bytes_archived: int = 0
    errors: int = 0


class ArchiveWorker:
    def __init__(
        self,
        store: ArchiveStore,
        client: httpx.AsyncClient,
        uploader: StorageUploader,
        url_policy: UrlPolicy,
        policy: ArchivePolicy,
        *,
        owner: str | None = None,
        temp_dir: Path | None = None,
        rng: random.Random | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._client = client
        self._uploader = uploader
        self._url_policy = url_policy
        self._policy = policy
        self.owner = owner or new_owner_id()
        self._temp_dir = temp_dir
        self._rng = rng or random.Random()
        # Times each attempt against its limits.
        self._clock = clock
        self.counts = ArchiveCounts()
        # The last backlog read from the database (None until read): for metrics.
        self.stats: ArchiveStats | None = None
        # Why archiving is paused (the bucket cannot be used), None when it runs.
        self.trouble: str | None = None
        self.in_flight = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    # --- Lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name="archive"),
            asyncio.create_task(self._read_stats(), name="archive-stats"),
        ]

    async def stop(self, deadline_seconds: float = 10.0) -> None:
        """Stop now: copies in flight are cut (a video may take minutes; the deadline only
        bounds the wait for them to unwind) and their tasks handed back at once, the
        interrupted attempt not counted."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=deadline_seconds)
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        try:
            released = await asyncio.wait_for(self._store.release_archive_leases(self.owner), 5)
            if released:
                log.info("archive stopped; handed %d unfinished copies back", released)
        except (StoreUnavailable, TimeoutError) as error:
            log.warning("could not hand archive tasks back (their leases expire): %s", error)

    async def _run(self) -> None:
        await self._wait_for_bucket()
        slots = [self._slot(i) for i in range(max(self._policy.concurrency, 1))]
        await asyncio.gather(self._renew_leases(), *slots)

    async def _wait_for_bucket(self) -> None:
        """Archiving waits (and nothing is given up) until the bucket answers; the first
        failure is logged as one line naming the setting."""
        attempt = 0
        while True:
            try:
                await self._uploader.check_bucket(self._policy.bucket)
            except ArchiveFailure as failure:
                if self.trouble is None:
                    log.error(
                        "archiving paused: %s (RECONCILER_ARCHIVE_BUCKET=%s); "
                        "results stay queued until it can be used",
                        failure.reason,
                        self._policy.bucket,
                    )
                self.trouble = failure.reason
                await asyncio.sleep(_LOOP_BACKOFF.delay(attempt, self._rng))
                attempt += 1
                continue
            if self.trouble is not None:
                log.info("archiving resumed: bucket %r is usable", self._policy.bucket)
            self.trouble = None
            return

    # --- Working the queue -----------------------------------------------------------------

    async def _slot(self, index: int) -> None:
        failures = 0
        while True:
            try:
                claimed = await self._store.claim_archive_tasks(
                    self.owner, 1, self._policy.lease_seconds, self._policy.max_attempts
                )
            except (StoreUnavailable, StoreRejected) as error:
                self.counts.errors += 1
                log.warning("archive slot %d could not claim tasks: %s", index, error)
                await asyncio.sleep(_LOOP_BACKOFF.delay(failures, self._rng))
                failures += 1
                continue
            failures = 0
            if not claimed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._policy.idle_seconds)
                continue
            for task in claimed:
                self.in_flight += 1
                try:
                    with log_context(project_id=str(task.project_id), job_id=task.job_id):
                        await self.archive(task)
                except (StoreUnavailable, StoreRejected) as error:
                    # The task stays leased and comes back when the lease expires.
                    self.counts.errors += 1
                    log.warning("could not record an archive task's outcome: %s", error)
                except Exception:
                    # A bug must not end the slot: the task comes back after its lease.
                    self.counts.errors += 1
                    log.exception("archiving %s failed unexpectedly", task.job_id)
                finally:
                    self.in_flight -= 1

    async def archive(self, task: ArchiveTask) -> None:
        """Copy one video and record the outcome (public for tests and `reconciler archive`)."""
        try:
            object_path = self._policy.path.render(task.project_id, task.job_id)
        except ObjectPathError as error:
            await self._failed(task, f"no object path for this clip: {error}", permanent=True)
            return
        try:
            with tempfile.TemporaryDirectory(prefix="archive-", dir=self._temp_dir) as folder:

                async def copy(progress: Progress) -> Downloaded:
                    downloaded = await download(
                        self._client,
                        task.source_url,
                        policy=self._url_policy,
                        max_bytes=self._policy.max_bytes,
                        into=Path(folder),
                        progress=progress,
                    )
                    await self._uploader.upload(
                        self._policy.bucket, object_path, downloaded, progress
                    )
                    return downloaded

                # Too slow or too long is a failed attempt (TransferFailed), counted as such.
                downloaded = await within_limits(copy, self._policy.limits, self._clock)
        except ArchiveFailure as failure:
            await self._failed(task, failure.reason, permanent=failure.permanent)
            return
        except Exception as error:
            # A full disk, an HTTP error the transfer did not classify, a bug: ours, so
            # transient (the attempts still run out: nothing is retried for ever).
            await self._failed(task, f"{type(error).__name__}: {error}", permanent=False)
            return
        archived = ArchivedObject(
            object_path=object_path,
            archived_url=public_object_url(
                self._policy.supabase_url, self._policy.bucket, object_path
            ),
            size_bytes=downloaded.size,
            sha256=downloaded.sha256,
        )
        state = await self._store.archive_succeeded(task, archived)
        self.counts.outcomes[state] += 1
        if state == "archived":
            self.counts.bytes_archived += downloaded.size
            log.info("archived %s (%d bytes) to %s", task.job_id, downloaded.size, object_path)
        elif state == "superseded":
            log.info("archived %s, but the app changed the clip meanwhile: left as is", task.job_id)

    async def _failed(self, task: ArchiveTask, reason: str, *, permanent: bool) -> None:
        retry_in = self._policy.retry.delay(task.attempts - 1, self._rng)
        state = await self._store.archive_failed(
            task,
            reason,
            permanent=permanent,
            retry_in_seconds=retry_in,
            max_attempts=self._policy.max_attempts,
        )
        self.counts.outcomes["retried" if state == "queued" else state] += 1
        if state == "given_up":
            log.warning("gave up archiving %s (the clip keeps its URL): %s", task.job_id, reason)
        elif state == "queued":
            log.info(
                "archiving %s failed (attempt %d), retrying in %.0f s: %s",
                task.job_id,
                task.attempts,
                retry_in,
                reason,
            )

    # --- Housekeeping ----------------------------------------------------------------------

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(self._policy.lease_seconds / 3)
            if self.in_flight == 0:
                continue
            try:
                await self._store.renew_archive_leases(self.owner, self._policy.lease_seconds)
            except (StoreUnavailable, StoreRejected) as error:
                self.counts.errors += 1
                log.warning("could not renew archive leases (retried): %s", error)

    async def _read_stats(self) -> None:
        while True:
            try:
                self.stats = await self._store.archive_stats()
            except (StoreUnavailable, StoreRejected) as error:
                log.debug("could not read the archive backlog: %s", error)
            await asyncio.sleep(self._policy.stats_interval_seconds)

    def wake(self) -> None:
        """Ask idle slots to look for tasks now."""
        self._wake.set()


async def announce_archiving(store: ArchiveStore, enabled: bool) -> None:
    """Tell SQL whether results written from now on are queued for archiving, retrying until
    the database answers (the service starts while it is down). Every replica should be
    configured alike: the switch is one row, the last replica started wins."""
    attempt = 0
    while True:
        try:
            backlog = await store.set_archiving(enabled)
        except StoreUnavailable as error:
            log.warning("could not switch archiving %s yet: %s", "on" if enabled else "off", error)
            await asyncio.sleep(_LOOP_BACKOFF.delay(attempt, random.Random()))
            attempt += 1
            continue
        if enabled or backlog:
            log.info(
                "archiving is %s; %d results wait to be archived",
                "on" if enabled else "off",
                backlog,
            )
        return
