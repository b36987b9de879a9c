"""`Store` in memory, with the semantics of the SQL functions in `supabase/migrations/`.

For unit tests of what sits above the port (engine, checker, ingest): no PostgreSQL, and time
from an injected clock (a `tests.fake_clock.FakeClock`), so due times, leases, ages and
retention move only when a test advances it. The same conformance suite
(`tests/store_conformance.py`) runs against this store and both real transports.

How it maps the SQL:
- `projects` (the app's table: clips of any JSON shape, an owner, a row version) and its one
  trigger: `MemoryApp` writes as the app does, appending to the outbox unless the write
  bypasses triggers; the store's own writes append nothing.
- `reconciler.jobs` per (project, job), `parked_results`, `untrackable_clips`,
  `changed_projects`: plain dicts and a list.
- One public call is one transaction: the state is copied when a call starts and put back if
  it raises; `drain_changes`, `resync_page` and `finish_round` reconcile each project under a
  savepoint the same way, so one refused project leaves no half-written state.
- A refusal (what an app trigger raising on a project's write is in PostgreSQL) is
  `refuse_writes(project, message)`; an outage is `outage = "reason"`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from reconciler.callers import UserCaller
from reconciler.clips import (
    FAILED,
    PENDING,
    is_trackable,
    is_video_url,
    over_limit_reason,
    untrackable_reason,
)
from reconciler.clock import Clock
from reconciler.ports import (
    ApplyOutcome,
    CheckRead,
    CheckWrite,
    ClipCounts,
    DrainOutcome,
    IngestOutcome,
    PendingStats,
    PollOutcome,
    ProjectSnapshot,
    ResyncPage,
    RoundOutcome,
    StoreRejected,
    StoreUnavailable,
    TrackedJob,
    WebhookOutcome,
)

# What the SQL keeps of an error text (`left(reason, 1000)`).
_ERROR_KEPT = 1000
# How many outbox rows a webhook for an unknown job drains first (reconciler_ingest_result).
_INGEST_DRAIN_BATCH = 100
# Long keys are named by their first characters (`left(key, 64)`).
_UNTRACKABLE_PREFIX = 64


@dataclass
class JobRow:
    """One row of `reconciler.jobs`; times on the store's clock."""

    project_id: UUID
    job_id: str
    first_seen_at: float
    next_check_at: float
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    last_error: str | None = None
    last_checked_at: float | None = None
    settled_at: float | None = None
    outcome: str | None = None


@dataclass
class ParkedRow:
    result: str
    reason: str | None
    received_at: float


@dataclass
class UntrackableRow:
    key_length: int
    key_prefix: str
    last_error: str
    first_seen_at: float


@dataclass
class ProjectRow:
    """A row of the app's `public.projects`."""

    clips: Any
    owner: str | None = None
    version: int = 0


@dataclass
class MemoryState:
    projects: dict[UUID, ProjectRow] = field(default_factory=dict)
    outbox: list[UUID] = field(default_factory=list)
    jobs: dict[tuple[UUID, str], JobRow] = field(default_factory=dict)
    parked: dict[str, ParkedRow] = field(default_factory=dict)
    untrackable: dict[tuple[UUID, str], UntrackableRow] = field(default_factory=dict)
    # `reconciler.tracking_settings`: unsettled jobs tracked per project.
    max_pending_per_project: int = 1000
    refused_writes: dict[UUID, str] = field(default_factory=dict)


def _is_pending(value: object) -> bool:
    return isinstance(value, str) and value == PENDING


def _as_object(clips: Any) -> dict[str, Any]:
    """A clips value that is not a JSON object holds no jobs (`jsonb_typeof(...) = 'object'`)."""
    return clips if isinstance(clips, dict) else {}


def _text_of(clips: Any, job_id: str) -> str | None:
    """`clips ->> job_id`: the value as text, None when absent, JSON null or not an object."""
    if not isinstance(clips, dict) or clips.get(job_id) is None:
        return None
    value = clips[job_id]
    return value if isinstance(value, str) else json.dumps(value)


def _kept(text: str | None) -> str | None:
    return None if text is None else text[:_ERROR_KEPT]


def assert_results(results: object) -> None:
    """`reconciler.assert_results`: anything but {"<job id>": "<url>" | "failed"} is refused."""
    if not isinstance(results, Mapping):
        raise StoreRejected("results must be a JSON object of job id to result")
    for job_id, value in results.items():
        if job_id == "":
            raise StoreRejected("results: empty job id")
        if not isinstance(value, str):
            raise StoreRejected(f"results: value for job {job_id} must be a string")
        if value in ("", PENDING):
            raise StoreRejected(f'results: value for job {job_id} must be a URL or "failed"')


def _refuse_negative(*caps: int | None) -> None:
    """The lean check functions refuse a negative cap (SQLSTATE 22023)."""
    if any(cap is not None and cap < 0 for cap in caps):
        raise StoreRejected("a cap must be >= 0 or null")


def _check_view(
    clips: dict[str, Any], max_clips_bytes: int | None
) -> tuple[ClipCounts, dict[str, Any] | None]:
    """`reconciler.check_view`: the counts, and the clips while their JSON text (as
    PostgreSQL writes jsonb: `", "` and `": "` separators, UTF-8) is at most the cap."""
    values = list(clips.values())
    counts = ClipCounts(
        total=len(values),
        completed=sum(1 for v in values if is_video_url(v)),
        pending=sum(1 for v in values if _is_pending(v)),
        failed=sum(1 for v in values if v == FAILED),
    )
    if max_clips_bytes is None:
        return counts, copy.deepcopy(clips)
    size = len(json.dumps(clips, ensure_ascii=False).encode())
    return counts, copy.deepcopy(clips) if size <= max_clips_bytes else None


class MemoryStore:
    """Implements `reconciler.ports.Store`."""

    def __init__(self, clock: Clock, *, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self.state = MemoryState()
        # Set to a reason and every call fails as the database being down does.
        self.outage: str | None = None
        # Calls per Store method, for tests that count round trips.
        self.calls: Counter[str] = Counter()
        self.closed = False

    # --- Test controls --------------------------------------------------------------------------

    def refuse_writes(self, project_id: UUID, message: str) -> None:
        """Every write of this project's row fails as an app trigger that raises makes it."""
        self.state.refused_writes[project_id] = message

    @property
    def app(self) -> MemoryApp:
        return MemoryApp(self)

    # --- Transactions ---------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock.now()

    def _call(self, name: str) -> None:
        self.calls[name] += 1
        if self.outage is not None:
            raise StoreUnavailable(f"database unreachable: {self.outage}")

    @contextlib.contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction (or a savepoint): on an exception, the state is as before."""
        saved = copy.deepcopy(self.state)
        try:
            yield
        except BaseException:
            self.state = saved
            raise

    # --- The SQL's internal functions -----------------------------------------------------------

    def _settle_jobs(self, project_id: UUID, clips: Any) -> None:
        """`reconciler.settle_jobs`: tracked jobs whose clip left "pending" (or is gone)."""
        now = self._now()
        for (project, job_id), row in self.state.jobs.items():
            if project != project_id or row.settled_at is not None:
                continue
            if isinstance(clips, dict) and _is_pending(clips.get(job_id)):
                continue
            row.settled_at = now
            row.outcome = _text_of(clips, job_id) or "removed"
            row.lease_owner = row.lease_expires_at = None

    def _track_pending(
        self,
        project_id: UUID,
        clips: Any,
        job_ids: Sequence[str] | None,
        first_check_delay_seconds: float,
        spread_seconds: float,
    ) -> None:
        """`reconciler.track_pending`: new pending jobs tracked (in key order, up to the
        project's limit), settled ones that are pending again tracked afresh; pending keys not
        tracked recorded with their reason (with every job, `job_ids` None, records of keys
        tracked or gone since removed)."""
        now = self._now()
        limit = self.state.max_pending_per_project
        pending = [key for key, value in _as_object(clips).items() if _is_pending(value)]
        asked = [key for key in pending if job_ids is None or key in job_ids]

        def tracked(job_id: str) -> bool:
            row = self.state.jobs.get((project_id, job_id))
            return row is not None and row.settled_at is None

        room = limit - sum(
            1
            for row in self.state.jobs.values()
            if row.project_id == project_id and row.settled_at is None
        )
        fresh = sorted(key for key in asked if is_trackable(key) and not tracked(key))
        for job_id in fresh[: max(room, 0)]:
            due = (
                now
                + max(first_check_delay_seconds, 0.0)
                + self._rng.random() * max(spread_seconds, 0.0)
            )
            row = self.state.jobs.get((project_id, job_id))
            if row is None:
                self.state.jobs[(project_id, job_id)] = JobRow(project_id, job_id, now, due)
            elif row.settled_at is not None:
                row.settled_at = row.outcome = row.last_error = row.last_checked_at = None
                row.attempts = 0
                row.first_seen_at = now
                row.next_check_at = due
        not_tracked = {key for key in asked if not is_trackable(key) or not tracked(key)}
        for key in not_tracked:
            reason = over_limit_reason(limit) if is_trackable(key) else untrackable_reason(key)
            record = self.state.untrackable.setdefault(
                (project_id, key),
                UntrackableRow(len(key), key[:_UNTRACKABLE_PREFIX], reason, now),
            )
            record.last_error = reason
        for project, key in list(self.state.untrackable):
            if project != project_id or key in not_tracked:
                continue
            if job_ids is None or key in job_ids:
                del self.state.untrackable[(project, key)]

    def _apply_results(self, project_id: UUID, results: Mapping[str, str]) -> ApplyOutcome:
        """`public.reconciler_apply_results`: the guarded merge (I1)."""
        assert_results(results)
        row = self.state.projects.get(project_id)
        if row is None:
            # The project is gone: nothing of it is left to poll.
            now = self._now()
            for job in self.state.jobs.values():
                if job.project_id == project_id and job.settled_at is None:
                    job.settled_at, job.outcome = now, "project deleted"
                    job.lease_owner = job.lease_expires_at = None
            for key in [k for k in self.state.untrackable if k[0] == project_id]:
                del self.state.untrackable[key]
            return ApplyOutcome(found=False, changed={}, clips={})
        changed = {
            job_id: value
            for job_id, value in results.items()
            if isinstance(row.clips, dict) and _is_pending(row.clips.get(job_id))
        }
        if changed:
            refusal = self.state.refused_writes.get(project_id)
            if refusal is not None:
                raise StoreRejected(refusal)
            # The store's own write: no outbox row (the trigger skips reconciler.own_write).
            row.clips = {**row.clips, **changed}
            row.version += 1
        self._settle_jobs(project_id, row.clips)
        return ApplyOutcome(found=True, changed=changed, clips=copy.deepcopy(_as_object(row.clips)))

    def _reconcile_project(
        self, project_id: UUID, first_check_delay_seconds: float, spread_seconds: float, track: bool
    ) -> tuple[dict[str, Any], dict[str, str]] | None:
        """`reconciler.reconcile_project`: (clips, applied parked results), None when gone."""
        row = self.state.projects.get(project_id)
        if row is None:
            self._apply_results(project_id, {})  # settles whatever was tracked for it
            return None
        clips = _as_object(row.clips)
        parked = {
            job_id: self.state.parked[job_id].result
            for job_id, value in clips.items()
            if _is_pending(value) and is_trackable(job_id) and job_id in self.state.parked
        }
        applied: dict[str, str] = {}
        if parked:
            outcome = self._apply_results(project_id, parked)
            applied, clips = outcome.changed, outcome.clips
        if track:
            # Settled first: they no longer take room under the per-project limit.
            self._settle_jobs(project_id, clips)
            self._track_pending(project_id, clips, None, first_check_delay_seconds, spread_seconds)
        return copy.deepcopy(clips), applied

    def _drain(
        self, limit: int, first_check_delay_seconds: float, spread_seconds: float
    ) -> DrainOutcome:
        """`reconciler.drain_changes`: each project on its own; a refused one is reported."""
        taken = self.state.outbox[: max(limit, 0)]
        del self.state.outbox[: len(taken)]
        projects = list(dict.fromkeys(taken))
        refused: dict[UUID, str] = {}
        for project_id in projects:
            try:
                with self._atomic():
                    self._reconcile_project(
                        project_id, first_check_delay_seconds, spread_seconds, True
                    )
            except StoreRejected as error:
                refused[project_id] = str(error)
        return DrainOutcome(rows=len(taken), projects=len(projects), refused=refused)

    def _tracked(self, row: JobRow) -> TrackedJob:
        return TrackedJob(
            job_id=row.job_id,
            project_id=row.project_id,
            attempts=row.attempts,
            age_seconds=self._now() - row.first_seen_at,
        )

    # --- Store ----------------------------------------------------------------------------------

    async def sync_project(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        spread_seconds: float = 0.0,
        *,
        track: bool = True,
    ) -> ProjectSnapshot | None:
        self._call("sync_project")
        with self._atomic():
            read = self._reconcile_project(
                project_id, first_check_delay_seconds, spread_seconds, track
            )
        if read is None:
            return None
        clips, applied = read
        return ProjectSnapshot(
            project_id=project_id,
            clips=clips,
            applied_parked=applied,
            pending_jobs={
                row.job_id: self._tracked(row)
                for row in self.state.jobs.values()
                if row.project_id == project_id and row.settled_at is None
            },
            untrackable={
                key[:_UNTRACKABLE_PREFIX]: len(key)
                for key, value in clips.items()
                if _is_pending(value) and not is_trackable(key)
            },
        )

    async def track_jobs(
        self, project_id: UUID, job_ids: Sequence[str], first_check_delay_seconds: float
    ) -> None:
        self._call("track_jobs")
        row = self.state.projects.get(project_id)
        if row is not None:
            with self._atomic():
                self._track_pending(
                    project_id, row.clips, list(job_ids), first_check_delay_seconds, 0
                )

    async def apply_results(self, project_id: UUID, results: Mapping[str, str]) -> ApplyOutcome:
        self._call("apply_results")
        with self._atomic():
            return self._apply_results(project_id, results)

    async def read_for_check(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        max_jobs: int | None,
        max_clips_bytes: int | None,
    ) -> CheckRead | None:
        """`public.reconciler_read_for_check`."""
        self._call("read_for_check")
        _refuse_negative(max_jobs, max_clips_bytes)
        with self._atomic():
            read = self._reconcile_project(project_id, first_check_delay_seconds, 0, False)
            if read is None:
                return None
            clips, _ = read
            tracked = {
                row.job_id: row
                for row in self.state.jobs.values()
                if row.project_id == project_id and row.settled_at is None
            }
            pending = [k for k, v in clips.items() if _is_pending(v) and is_trackable(k)]
            never = float("inf")
            pending.sort(key=lambda k: (tracked[k].first_seen_at if k in tracked else never, k))
            cut = len(pending) if max_jobs is None else max_jobs
            if len(pending) > cut:
                self._track_pending(project_id, clips, None, first_check_delay_seconds, 0)
            now = self._now()
            counts, capped = _check_view(clips, max_clips_bytes)
            return CheckRead(
                asked={
                    k: now - tracked[k].first_seen_at if k in tracked else None
                    for k in pending[:cut]
                },
                more_pending=len(pending) - min(cut, len(pending)),
                counts=counts,
                clips=capped,
            )

    async def apply_check_results(
        self,
        project_id: UUID,
        results: Mapping[str, str],
        keys: Sequence[str],
        max_clips_bytes: int | None,
    ) -> CheckWrite:
        """`public.reconciler_apply_check_results`."""
        self._call("apply_check_results")
        _refuse_negative(max_clips_bytes)
        with self._atomic():
            outcome = self._apply_results(project_id, results)
        if not outcome.found:
            return CheckWrite(False, {}, {}, ClipCounts(0, 0, 0, 0), None)
        counts, capped = _check_view(outcome.clips, max_clips_bytes)
        values = {k: outcome.clips[k] for k in keys if k in outcome.clips}
        return CheckWrite(True, outcome.changed, values, counts, capped)

    async def project_visible_to(self, project_id: UUID, user: UserCaller) -> bool:
        """The test app's row-level security (tests/sql/app_rls.sql): a user sees only the
        projects they own."""
        self._call("project_visible_to")
        row = self.state.projects.get(project_id)
        return row is not None and row.owner is not None and row.owner == user.claims.get("sub")

    async def ingest_result(
        self, job_id: str, result: str, reason: str | None, first_check_delay_seconds: float
    ) -> IngestOutcome:
        self._call("ingest_result")
        with self._atomic():
            return self._ingest(job_id, result, reason, first_check_delay_seconds)

    def _ingest(
        self, job_id: str, result: str, reason: str | None, first_check_delay_seconds: float
    ) -> IngestOutcome:
        assert_results({job_id: result})
        if not is_trackable(job_id):
            raise StoreRejected(f"job id of {len(job_id)} characters cannot be a Runware task id")
        # The app's "pending" write may still wait in the outbox: take it in first.
        if self.state.outbox and not any(j == job_id for _, j in self.state.jobs):
            self._drain(_INGEST_DRAIN_BATCH, first_check_delay_seconds, 0)
        # Read after the drain: a savepoint it rolled back replaced the state object.
        state = self.state
        stored = job_id not in state.parked
        if stored:
            state.parked[job_id] = ParkedRow(result, reason, self._now())
        first = state.parked[job_id]  # the first terminal result wins, for every project
        holders = sorted(row.project_id for row in state.jobs.values() if row.job_id == job_id)
        applied: list[UUID] = []
        for project_id in holders:
            outcome = self._apply_results(project_id, {job_id: first.result})
            if job_id in outcome.changed:
                applied.append(project_id)
            lands = job_id in outcome.changed or (
                outcome.found and outcome.clips.get(job_id) == first.result
            )
            row = state.jobs[(project_id, job_id)]
            if first.reason is not None and lands and row.last_error is None:
                row.last_error = _kept(first.reason)
        if applied:
            return IngestOutcome(WebhookOutcome.APPLIED, tuple(applied))
        return IngestOutcome(
            WebhookOutcome.PARKED if not holders and stored else WebhookOutcome.DUPLICATE
        )

    async def note_job_error(self, job_id: str, error: str) -> bool:
        self._call("note_job_error")
        rows = [
            row
            for row in self.state.jobs.values()
            if row.job_id == job_id and row.settled_at is None
        ]
        for row in rows:
            row.last_error = _kept(error)
        return bool(rows)

    async def failure_reasons(self, project_id: UUID, job_ids: Sequence[str]) -> dict[str, str]:
        self._call("failure_reasons")
        reasons: dict[str, str] = {}
        for job_id in list(dict.fromkeys(job_ids))[:1000]:
            row = self.state.jobs.get((project_id, job_id))
            parked = self.state.parked.get(job_id)
            reason = (row.last_error if row else None) or (parked.reason if parked else None)
            if reason is not None:
                reasons[job_id] = reason
        return reasons

    async def claim_due_jobs(
        self, owner: str, limit: int, lease_seconds: float, *, per_project: int | None = None
    ) -> list[TrackedJob]:
        self._call("claim_due_jobs")
        now = self._now()
        # Each job's turn within its project (oldest due first); taken turn by turn, at most
        # `per_project` turns per project.
        by_project: dict[UUID, list[JobRow]] = {}
        for row in self.state.jobs.values():
            if (
                row.settled_at is None
                and row.next_check_at <= now
                and (row.lease_expires_at is None or row.lease_expires_at <= now)
            ):
                by_project.setdefault(row.project_id, []).append(row)
        turns = [
            (turn, row.next_check_at, row)
            for rows in by_project.values()
            for turn, row in enumerate(sorted(rows, key=lambda r: (r.next_check_at, r.job_id)))
            if per_project is None or turn < max(per_project, 1)
        ]
        turns.sort(key=lambda t: (t[0], t[1]))
        due = [row for _, _, row in turns[: max(limit, 0)]]
        for row in due:
            row.lease_owner, row.lease_expires_at = owner, now + lease_seconds
        return [self._tracked(row) for row in due]

    async def finish_round(self, owner: str, outcomes: Sequence[PollOutcome]) -> RoundOutcome:
        self._call("finish_round")
        with self._atomic():
            return self._finish_round(owner, outcomes)

    def _finish_round(self, owner: str, outcomes: Sequence[PollOutcome]) -> RoundOutcome:
        jobs = self.state.jobs
        # Reasons first: a failure's reason stays on the job it settles.
        for o in outcomes:
            row = jobs.get((o.project_id, o.job_id))
            if row is not None and o.result is not None and o.reason is not None:
                row.last_error = _kept(o.reason)
        results: dict[UUID, dict[str, str]] = {}
        for o in outcomes:
            if o.result is not None:
                results.setdefault(o.project_id, {})[o.job_id] = o.result
        changed: dict[UUID, dict[str, str]] = {}
        refused: dict[UUID, str] = {}
        for project_id, project_results in results.items():
            try:
                with self._atomic():
                    outcome = self._apply_results(project_id, project_results)
            except StoreRejected as error:
                refused[project_id] = str(error)
                continue
            if outcome.changed:
                changed[project_id] = outcome.changed
        now = self._now()
        # One update per job however often the round names it (UPDATE … FROM: the last here).
        latest = {(o.project_id, o.job_id): o for o in outcomes}
        jobs = self.state.jobs
        rescheduled = 0
        for key, o in latest.items():
            row = jobs.get(key)
            if row is None or row.settled_at is not None:
                continue
            if not (
                row.lease_owner is None
                or row.lease_owner == owner
                or (row.lease_expires_at is not None and row.lease_expires_at <= now)
            ):
                continue  # another replica holds it now
            row.attempts += 1
            row.last_checked_at = now
            row.next_check_at = now + max(o.next_check_in_seconds, 0.0)
            if o.result is None or o.reason is not None:
                row.last_error = _kept(o.reason)
            row.lease_owner = row.lease_expires_at = None
            rescheduled += 1
        return RoundOutcome(changed=changed, refused=refused, rescheduled=rescheduled)

    async def drain_changes(
        self, limit: int, first_check_delay_seconds: float, spread_seconds: float
    ) -> DrainOutcome:
        self._call("drain_changes")
        with self._atomic():
            return self._drain(limit, first_check_delay_seconds, spread_seconds)

    async def resync_page(
        self,
        after: UUID | None,
        limit: int,
        first_check_delay_seconds: float,
        spread_seconds: float,
    ) -> ResyncPage:
        self._call("resync_page")
        limit = max(limit, 0)
        page = sorted(p for p in self.state.projects if after is None or p > after)[:limit]
        reconciled = 0
        refused: dict[UUID, str] = {}
        for project_id in page:
            clips = self.state.projects[project_id].clips
            if not any(_is_pending(value) for value in _as_object(clips).values()):
                continue
            try:
                with self._atomic():
                    self._reconcile_project(
                        project_id, first_check_delay_seconds, spread_seconds, True
                    )
                reconciled += 1
            except StoreRejected as error:
                refused[project_id] = str(error)
        return ResyncPage(
            last=page[-1] if page and len(page) >= limit else None,
            scanned=len(page),
            reconciled=reconciled,
            refused=refused,
        )

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        self._call("renew_leases")
        now = self._now()
        renewed = 0
        for row in self.state.jobs.values():
            if row.lease_owner == owner and row.settled_at is None:
                row.lease_expires_at = now + lease_seconds
                renewed += 1
        return renewed

    async def release_leases(self, owner: str) -> int:
        self._call("release_leases")
        released = 0
        for row in self.state.jobs.values():
            if row.lease_owner == owner:
                row.lease_owner = row.lease_expires_at = None
                released += 1
        return released

    async def projects_with_pending(self, after: UUID | None, limit: int) -> list[UUID]:
        self._call("projects_with_pending")
        unsettled = {
            row.project_id
            for row in self.state.jobs.values()
            if row.settled_at is None and (after is None or row.project_id > after)
        }
        return sorted(unsettled)[: max(limit, 0)]

    async def make_due_now(self, limit: int) -> int:
        self._call("make_due_now")
        now = self._now()
        later = sorted(
            (
                row
                for row in self.state.jobs.values()
                if row.settled_at is None and row.next_check_at > now
            ),
            key=lambda row: row.next_check_at,
        )[: max(min(limit, 10000), 0)]
        for row in later:
            row.next_check_at = now
        return len(later)

    async def purge(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        self._call("purge")
        cutoff = self._now() - max(older_than_seconds, 0.0)
        old_jobs = [
            key
            for key, row in self.state.jobs.items()
            if row.settled_at is not None and row.settled_at < cutoff
        ][: max(limit, 0)]
        for key in old_jobs:
            del self.state.jobs[key]
        old_parked = [
            job_id for job_id, row in self.state.parked.items() if row.received_at < cutoff
        ][: max(limit, 0)]
        for job_id in old_parked:
            del self.state.parked[job_id]
        return len(old_jobs), len(old_parked)

    async def purge_archive(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        # The in-memory store keeps no archive queue (archiving needs the database).
        self._call("purge_archive")
        return 0, 0

    async def set_tracking_limits(self, max_pending_per_project: int) -> int:
        self._call("set_tracking_limits")
        if max_pending_per_project < 1:
            raise StoreRejected("max_pending_per_project must be a whole number of at least 1")
        self.state.max_pending_per_project = max_pending_per_project
        return sum(
            1
            for row in self.state.untrackable.values()
            if row.last_error.startswith("project has more than ")
        )

    async def pending_stats(self) -> PendingStats:
        self._call("pending_stats")
        unsettled = [row for row in self.state.jobs.values() if row.settled_at is None]
        oldest = min((row.first_seen_at for row in unsettled), default=None)
        return PendingStats(
            pending=len(unsettled),
            oldest_age_seconds=0.0 if oldest is None else self._now() - oldest,
            untrackable=len(self.state.untrackable),
            changes_waiting=len(self.state.outbox),
        )

    async def ping(self) -> None:
        self._call("ping")

    async def close(self) -> None:
        self.closed = True


class MemoryApp:
    """The app's side of `public.projects`: its writes, and the one trigger that appends the
    project to the outbox when its clips change."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    @property
    def _state(self) -> MemoryState:
        return self._store.state

    def insert(
        self,
        clips: Any,
        *,
        project_id: UUID | None = None,
        owner: str | None = None,
        triggers: bool = True,
    ) -> UUID:
        """A new project row; `triggers=False` as with `session_replication_role = replica`."""
        project_id = project_id or uuid4()
        if project_id in self._state.projects:
            raise ValueError(f"duplicate key: project {project_id} exists")
        self._state.projects[project_id] = ProjectRow(copy.deepcopy(clips), owner)
        if triggers:
            self._state.outbox.append(project_id)
        return project_id

    def update(self, project_id: UUID, clips: Any, *, triggers: bool = True) -> None:
        """Replace the project's clips (the app's own write)."""
        row = self._state.projects[project_id]
        changed = row.clips != clips
        row.clips = copy.deepcopy(clips)
        row.version += 1
        if changed and triggers:
            self._state.outbox.append(project_id)

    def merge(self, project_id: UUID, clips: Mapping[str, Any]) -> None:
        """`clips = clips || $new`: the app adding (or resetting) keys atomically."""
        current = self._state.projects[project_id].clips
        self.update(project_id, {**_as_object(current), **clips})

    def delete(self, project_id: UUID) -> None:
        del self._state.projects[project_id]

    def clips(self, project_id: UUID) -> Any:
        return copy.deepcopy(self._state.projects[project_id].clips)

    def version(self, project_id: UUID) -> int:
        return self._state.projects[project_id].version
