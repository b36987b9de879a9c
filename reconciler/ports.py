"""The service's I/O edges as Protocols, and the values that cross them.

Adapters (store/, runware/client.py) implement these; the domain and the use cases depend only
on them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol
from uuid import UUID

from reconciler.callers import UserCaller
from reconciler.clips import TaskStatus


class StoreUnavailable(Exception):
    """The database could not be reached; the caller should answer 503 or retry later."""


class StoreRejected(Exception):
    """The database refused the call's input (a bug in the caller, never retried)."""


class StoreConflict(StoreUnavailable):
    """The database rolled the call back to break a lock cycle (40P01) or a serialization
    conflict (40001): nothing of it was kept, and running it again may succeed. The store runs
    such a call once more before raising this (reconciler/store/functions.py)."""


class UnexpectedStoreAnswer(StoreUnavailable):
    """The database answered something this version does not know (its SQL functions and this
    code out of step, e.g. mid-deploy). Treated as an outage: retried, never a 500."""


@dataclass(frozen=True, slots=True)
class TrackedJob:
    """Scheduling state of one pending job, as the database holds it."""

    job_id: str
    project_id: UUID
    attempts: int
    age_seconds: float


@dataclass(frozen=True, slots=True)
class ProjectSnapshot:
    """A project's clips as stored now, after any parked webhook results were applied."""

    project_id: UUID
    clips: dict[str, Any]
    applied_parked: dict[str, str]
    pending_jobs: dict[str, TrackedJob]
    # Pending keys that are not a Runware task id (a UUID): never tracked nor polled. Named by
    # their first characters (the key may be a megabyte), with their length.
    untrackable: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ClipCounts:
    total: int
    completed: int
    pending: int
    failed: int


@dataclass(frozen=True, slots=True)
class CheckRead:
    """What a check needs of a project, bounded: the pending jobs to ask Runware about (with
    their tracking age, None when not tracked yet), how many more are pending (tracked for the
    poller, not asked about), the counts, and the clips unless over the caller's cap."""

    asked: dict[str, float | None]
    more_pending: int
    counts: ClipCounts
    clips: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class CheckWrite:
    """A check's guarded write, answered as boundedly as its read: the asked keys' values now."""

    found: bool
    changed: dict[str, str]
    values: dict[str, Any]
    counts: ClipCounts
    clips: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ApplyOutcome:
    """Result of one guarded merge: which keys moved, and the clips as now stored."""

    found: bool
    changed: dict[str, str]
    clips: dict[str, Any]


class WebhookOutcome(StrEnum):
    """What became of a webhook: per task named in an accepted body, or per request refused
    before anything was stored. The values are the metric labels and the answer's JSON keys."""

    # Per task. The first three are what the SQL function `reconciler_ingest_result` answers.
    APPLIED = "applied"  # written to every project holding the job
    PARKED = "parked"  # kept for a project that does not hold the job yet (I3)
    DUPLICATE = "duplicate"  # already known
    IGNORED = "ignored"  # not a result: progress, or something only polling can settle
    REJECTED = "rejected"  # not written: its video URL or job id was refused
    # Per request.
    UNAUTHORIZED = "unauthorized"
    TOO_LARGE = "too_large"
    INVALID = "invalid"
    UNAVAILABLE = "unavailable"


# What storing a result can come to: the only outcomes `Store.ingest_result` returns.
STORED_OUTCOMES = (WebhookOutcome.APPLIED, WebhookOutcome.PARKED, WebhookOutcome.DUPLICATE)
# One count per task an accepted body named.
TASK_OUTCOMES = (*STORED_OUTCOMES, WebhookOutcome.IGNORED, WebhookOutcome.REJECTED)


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to a webhook result: written (to these projects), kept for a project
    that does not hold the job yet, or already known (one of `STORED_OUTCOMES`)."""

    kind: WebhookOutcome
    project_ids: tuple[UUID, ...] = ()


@dataclass(frozen=True, slots=True)
class PollOutcome:
    """What one poll of a job decided: a result to write (or None), why, and when to poll it
    again if it stays pending."""

    project_id: UUID
    job_id: str
    result: str | None
    reason: str | None
    next_check_in_seconds: float
    # Runware's progress report (0-100) for a job still working, shown to the operator.
    progress: int | None = None


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """A poll round as written: clips that moved, per project; projects the database refused,
    with its reason; jobs rescheduled."""

    changed: dict[UUID, dict[str, str]]
    refused: dict[UUID, str]
    rescheduled: int


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    """One batch of the change outbox: rows taken, projects reconciled, projects refused."""

    rows: int
    projects: int
    refused: dict[UUID, str]


@dataclass(frozen=True, slots=True)
class ResyncPage:
    """One keyset page of the full resync; `last` is where the next page starts (None: done)."""

    last: UUID | None
    scanned: int
    reconciled: int
    refused: dict[UUID, str]


@dataclass(frozen=True, slots=True)
class PendingStats:
    """Tracked jobs not yet settled, and how long the oldest has waited (0 when none);
    pending clips not tracked (not a task id, or over the per-project limit); outbox rows not
    drained yet."""

    pending: int
    oldest_age_seconds: float
    untrackable: int = 0
    changes_waiting: int = 0


class Store(Protocol):
    """Every database operation the reconciler performs; each is one SQL function call."""

    async def sync_project(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        spread_seconds: float = 0.0,
        *,
        track: bool = True,
    ) -> ProjectSnapshot | None:
        """Bring our tracking in step with the project's row and return its clips: apply parked
        results to it (a write), start tracking new pending jobs (with `track`). Named for
        what it does, not after the SQL function it calls (`reconciler_read_project`, a name
        released migrations fixed). A newly tracked job is first due after the delay plus a
        random share of the spread."""
        ...

    async def track_jobs(
        self, project_id: UUID, job_ids: Sequence[str], first_check_delay_seconds: float
    ) -> None:
        """Start tracking those of `job_ids` that are still pending in the project."""
        ...

    async def apply_results(self, project_id: UUID, results: Mapping[str, str]) -> ApplyOutcome:
        """Guarded merge (I1): only keys whose stored value is "pending" change."""
        ...

    async def read_for_check(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        max_jobs: int | None,
        max_clips_bytes: int | None,
    ) -> CheckRead | None:
        """A project as a check needs it (parked results applied first, as `sync_project`
        does, nothing tracked): at most `max_jobs` trackable pending jobs to ask about, those
        tracked longest first (None: all; the rest are tracked now), and the clips only while
        their JSON text is at most `max_clips_bytes` (None: always)."""
        ...

    async def apply_check_results(
        self,
        project_id: UUID,
        results: Mapping[str, str],
        keys: Sequence[str],
        max_clips_bytes: int | None,
    ) -> CheckWrite:
        """`apply_results`, answered with `keys`' values, the counts, and the clips only
        while at most `max_clips_bytes`."""
        ...

    async def project_visible_to(self, project_id: UUID, user: UserCaller) -> bool:
        """Whether the app's row-level security lets this user see the project."""
        ...

    async def ingest_result(
        self, job_id: str, result: str, reason: str | None, first_check_delay_seconds: float
    ) -> IngestOutcome:
        """Keep a webhook result and apply it to every project holding the job (I3). Jobs the
        call finds pending on the way (it may drain the outbox) are first due after the delay."""
        ...

    async def note_job_error(self, job_id: str, error: str) -> bool:
        """Record why a result for a tracked job was not written."""
        ...

    async def failure_reasons(self, project_id: UUID, job_ids: Sequence[str]) -> dict[str, str]:
        """Why each of these failed clips of the project failed, where a reason is recorded
        (its job's last error, else the webhook's reason); at most 1000 jobs are looked up."""
        ...

    async def claim_due_jobs(
        self, owner: str, limit: int, lease_seconds: float, *, per_project: int | None = None
    ) -> list[TrackedJob]:
        """Up to `limit` due jobs, leased to `owner`, taken fairly across projects: each
        project's oldest due job first, then each project's next, at most `per_project` from
        one project (None: no cap beyond `limit`)."""
        ...

    async def set_tracking_limits(self, max_pending_per_project: int) -> int:
        """How many unsettled jobs one project may have tracked (the rest of its pending keys
        are recorded as not tracked, with the reason); returns how many clips are over it."""
        ...

    async def finish_round(self, owner: str, outcomes: Sequence[PollOutcome]) -> RoundOutcome:
        """A poll round's whole outcome in one call: results, reasons, next checks, leases."""
        ...

    async def drain_changes(
        self, limit: int, first_check_delay_seconds: float, spread_seconds: float
    ) -> DrainOutcome:
        """Reconcile the projects the outbox names (what the app changed), a batch at most."""
        ...

    async def resync_page(
        self,
        after: UUID | None,
        limit: int,
        first_check_delay_seconds: float,
        spread_seconds: float,
    ) -> ResyncPage:
        """One page of the full scan of `projects`, for writes the trigger never saw."""
        ...

    async def renew_leases(self, owner: str, lease_seconds: float) -> int: ...

    async def release_leases(self, owner: str) -> int: ...

    async def projects_with_pending(self, after: UUID | None, limit: int) -> list[UUID]: ...

    async def purge(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        """Forget settled jobs and parked results older than that; (jobs, parked) deleted."""
        ...

    async def make_due_now(self, limit: int) -> int:
        """Up to `limit` unsettled jobs not yet due become due now (`sweep --now`); how many.
        Repeated until 0, every pending job is due."""
        ...

    async def purge_archive(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        """Forget finished archive rows older than that, deleted projects' too; (clips,
        copies) deleted. A store without an archive queue has nothing to forget."""
        ...

    async def pending_stats(self) -> PendingStats:
        """For metrics: how much tracked work is outstanding."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class RunwareCredentialsRejected(Exception):
    """Runware answered 401/402/403: the API key is wrong, out of credit or not allowed."""


class RunwareApi(Protocol):
    async def get_statuses(self, task_uuids: Sequence[str]) -> dict[str, TaskStatus]:
        """Status of each task; every requested UUID is in the answer.

        Transient failures end as `CheckError` for the tasks concerned; rejected credentials
        raise `RunwareCredentialsRejected` because no task can be checked.
        """
        ...

    async def aclose(self) -> None: ...


FeedState = Literal["starting", "subscribed", "reconnecting", "stopped"]


class FeedHints(Protocol):
    """Where a change feed hands its hints. Both methods are non-blocking and never raise."""

    def project_changed(self, project_id: UUID) -> None:
        """This project's row changed; reconcile it soon."""
        ...

    def resync(self) -> None:
        """Events may have been missed (a (re)subscription): sweep every pending project."""
        ...


class ChangeFeed(Protocol):
    """A source of hints that `projects.clips` changed. Hints only: state is re-read (I5)."""

    @property
    def state(self) -> FeedState: ...

    async def run(self, hints: FeedHints) -> None:
        """Follow changes until cancelled, reconnecting by itself; never returns otherwise."""
        ...


# --- The operator's view (reconciler status, GET /admin) --------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaHeartbeat:
    """What a running replica says about itself every few seconds. `interval_seconds` is how
    often it says it: readers call it dead after a few missed beats, without knowing its
    configuration."""

    owner: str
    version: str
    started_at: datetime
    interval_seconds: float
    feed_state: str
    leases_held: int
    last_sweep_at: datetime | None


class HeartbeatStore(Protocol):
    """Where each replica records that it is alive; one SQL function call each."""

    async def record_heartbeat(self, heartbeat: ReplicaHeartbeat) -> None:
        """Upsert this replica's row; also forgets replicas silent for long (a bounded few)."""
        ...

    async def forget_replica(self, owner: str) -> None:
        """A replica that stops cleanly removes its row."""
        ...


class OperatorStore(HeartbeatStore, Protocol):
    """Reads for the operator, beside the heartbeats; each is one SQL function call, bounded
    by the unsettled jobs, the replicas or one project, never by the number of projects (I10)."""

    async def operator_overview(self, oldest_limit: int) -> Mapping[str, Any]:
        """The overview as the database answers it (decoded in reconciler.operator.views)."""
        ...

    async def operator_project(self, project_id: UUID) -> Mapping[str, Any] | None:
        """Every clip of one project with its job row, or None for an unknown project."""
        ...

    async def operator_find(self, id_: UUID) -> Mapping[str, Any]:
        """Whether `id_` is a project (`project`), and the projects that hold it as a job
        (`job_projects`, at most 100; decoded in reconciler.operator.views)."""
        ...

    async def project_archive_states(self, project_id: UUID) -> dict[str, str]:
        """Job id → its archive task's state, for the clips of one project that have one."""
        ...


# --- Archiving finished videos (RECONCILER_ARCHIVE) --------------------------------------------

ArchiveTaskState = Literal["queued", "archived", "given_up", "superseded"]
# What finishing a task did: the clip swapped to the archived URL; the clip had changed (left
# alone); or the task was no longer queued for that URL (another replica finished it).
ArchiveSucceeded = Literal["archived", "superseded", "not_queued"]
ArchiveFailed = Literal["queued", "given_up", "not_queued"]


@dataclass(frozen=True, slots=True)
class ArchiveTask:
    """A claimed copy: copy `source_url` into Storage, once for every clip holding it, at the
    object path of the clip it was first queued for (`project_id`, `job_id`). `attempts`
    counts claims, this one included."""

    project_id: UUID
    job_id: str
    source_url: str
    attempts: int


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """Where a video now lives in Storage, and what was copied."""

    object_path: str
    archived_url: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class ArchiveBackfillPage:
    """One keyset page of the back-fill; `last` is where the next page starts (None: done)."""

    last: UUID | None
    scanned: int
    queued: int


@dataclass(frozen=True, slots=True)
class ArchiveStats:
    """Whether archiving is on, tasks not finished and the age of the oldest, tasks by state."""

    enabled: bool
    backlog: int
    oldest_age_seconds: float
    by_state: dict[str, int] = field(default_factory=dict)


class ArchiveStore(Protocol):
    """The archive queue's database operations; each is one SQL function call."""

    async def set_archiving(self, enabled: bool) -> int:
        """Tell SQL whether results written from now on are queued; returns the backlog."""
        ...

    async def claim_archive_tasks(
        self, owner: str, limit: int, lease_seconds: float, max_attempts: int
    ) -> list[ArchiveTask]:
        """Lease due tasks (expired leases included); tasks whose clip changed end superseded,
        tasks claimed `max_attempts` times already (never finished) end given up."""
        ...

    async def renew_archive_leases(self, owner: str, lease_seconds: float) -> int: ...

    async def release_archive_leases(self, owner: str) -> int:
        """A clean stop: this owner's tasks are claimable again at once."""
        ...

    async def archive_succeeded(
        self, task: ArchiveTask, archived: ArchivedObject
    ) -> ArchiveSucceeded:
        """Swap every clip waiting for the task's URL to the archived URL, each iff it still
        holds that URL (I1); "archived" when at least one was."""
        ...

    async def archive_failed(
        self,
        task: ArchiveTask,
        error: str,
        *,
        permanent: bool,
        retry_in_seconds: float,
        max_attempts: int,
    ) -> ArchiveFailed:
        """Retry later, or give up (permanent, or attempts used up): the clip keeps its URL."""
        ...

    async def archive_backfill_page(
        self,
        after: UUID | None,
        limit: int,
        source_prefixes: Sequence[str],
        archived_prefix: str,
    ) -> ArchiveBackfillPage:
        """Queue the clips of one page of projects that hold URLs from these origins
        (`scheme://host/`) not archived yet."""
        ...

    async def archive_stats(self, *, by_state: bool = False) -> ArchiveStats:
        """The backlog (cheap); `by_state` also counts every task ever queued (on demand)."""
        ...


class FullStore(Store, ArchiveStore, OperatorStore, Protocol):
    """Everything both transports implement: the reconciler's store, the archive queue and the
    operator's reads."""
