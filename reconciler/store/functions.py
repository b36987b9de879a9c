"""`Store` over the SQL functions, whatever carries the calls (asyncpg or PostgREST RPC).

A transport only has to run one function with named JSON-compatible arguments and hand back
its JSON-compatible result; decoding into domain values happens here, once for both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol
from uuid import UUID

from reconciler.callers import UserCaller
from reconciler.ports import (
    STORED_OUTCOMES,
    ApplyOutcome,
    ArchiveBackfillPage,
    ArchivedObject,
    ArchiveFailed,
    ArchiveStats,
    ArchiveSucceeded,
    ArchiveTask,
    CheckRead,
    CheckWrite,
    ClipCounts,
    DrainOutcome,
    IngestOutcome,
    PendingStats,
    PollOutcome,
    ProjectSnapshot,
    ReplicaHeartbeat,
    ResyncPage,
    RoundOutcome,
    StoreConflict,
    TrackedJob,
    UnexpectedStoreAnswer,
    WebhookOutcome,
)
from reconciler.store import calls
from reconciler.store.calls import SqlFunction

log = logging.getLogger(__name__)


class FunctionCaller(Protocol):
    """Runs one SQL function. Raises StoreUnavailable / StoreRejected on failure."""

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any: ...

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        """Run the function as the signed-in user, so the app's row-level security applies."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _log_conflict(function: SqlFunction, conflict: StoreConflict) -> None:
    """A call the database rolled back whole (deadlock, serialization failure) is run once more
    here, the one place every call passes, before anyone answers 503 or reschedules: the
    functions take their locks in one order (docs/architecture.md, "Lock order"), so a second
    conflict in a row means something is wrong, and it is raised."""
    log.warning("%s rolled back by the database, running it once more: %s", function.name, conflict)


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _clips(value: object) -> dict[str, Any]:
    """A clips column that is not a JSON object (null, an array) holds no jobs for us."""
    return dict(value) if isinstance(value, dict) else {}


def _counts(value: Mapping[str, Any]) -> ClipCounts:
    return ClipCounts(
        total=int(value["total"]),
        completed=int(value["completed"]),
        pending=int(value["pending"]),
        failed=int(value["failed"]),
    )


def _capped_clips(value: object) -> dict[str, Any] | None:
    """The clips a lean answer carries: None when they were over the cap."""
    return None if value is None else _clips(value)


def _by_project(value: Mapping[str, Any]) -> dict[UUID, Any]:
    return {_uuid(project): detail for project, detail in value.items()}


def _tracked(job_id: str, row: Mapping[str, Any], project_id: UUID | None = None) -> TrackedJob:
    return TrackedJob(
        job_id=job_id,
        project_id=project_id if project_id is not None else _uuid(row["project_id"]),
        attempts=int(row["attempts"]),
        age_seconds=float(row["age_seconds"]),
    )


def _stored_outcome(value: object) -> WebhookOutcome:
    """The outcome `reconciler_ingest_result` answered, if it is one this code knows."""
    for outcome in STORED_OUTCOMES:
        if value == outcome.value:
            return outcome
    expected = ", ".join(STORED_OUTCOMES)
    raise UnexpectedStoreAnswer(
        f"{calls.INGEST_RESULT.name} answered outcome {value!r}, expected one of {expected}:"
        " are the migrations and the service the same version?"
    )


class FunctionStore:
    def __init__(self, caller: FunctionCaller) -> None:
        self._caller = caller

    async def _call(self, function: SqlFunction, /, **arguments: Any) -> Any:
        """Run a catalogued function; `bind` checks the arguments against the catalogue."""
        bound = function.bind(**arguments)
        try:
            return await self._caller.call(function, bound)
        except StoreConflict as conflict:
            _log_conflict(function, conflict)
        return await self._caller.call(function, bound)

    async def _call_as_user(
        self, function: SqlFunction, user: UserCaller, /, **arguments: Any
    ) -> Any:
        bound = function.bind(**arguments)
        try:
            return await self._caller.call_as_user(function, bound, user)
        except StoreConflict as conflict:
            _log_conflict(function, conflict)
        return await self._caller.call_as_user(function, bound, user)

    async def sync_project(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        spread_seconds: float = 0.0,
        *,
        track: bool = True,
    ) -> ProjectSnapshot | None:
        answer = await self._call(
            calls.READ_PROJECT,
            project_id=project_id,
            first_check_delay_seconds=first_check_delay_seconds,
            spread_seconds=spread_seconds,
            track=track,
        )
        if not answer["found"]:
            return None
        return ProjectSnapshot(
            project_id=project_id,
            clips=_clips(answer["clips"]),
            applied_parked=dict(answer["applied_parked"]),
            pending_jobs={
                job_id: _tracked(job_id, row, project_id)
                for job_id, row in answer["pending_jobs"].items()
            },
            untrackable={key: int(n) for key, n in answer.get("untrackable", {}).items()},
        )

    async def track_jobs(
        self, project_id: UUID, job_ids: Sequence[str], first_check_delay_seconds: float
    ) -> None:
        await self._call(
            calls.TRACK_JOBS,
            project_id=project_id,
            job_ids=list(job_ids),
            first_check_delay_seconds=first_check_delay_seconds,
        )

    async def apply_results(self, project_id: UUID, results: Mapping[str, str]) -> ApplyOutcome:
        answer = await self._call(calls.APPLY_RESULTS, project_id=project_id, results=dict(results))
        return ApplyOutcome(
            found=bool(answer["found"]),
            changed=dict(answer["changed"]),
            clips=_clips(answer["clips"]),
        )

    async def read_for_check(
        self,
        project_id: UUID,
        first_check_delay_seconds: float,
        max_jobs: int | None,
        max_clips_bytes: int | None,
    ) -> CheckRead | None:
        answer = await self._call(
            calls.READ_FOR_CHECK,
            project_id=project_id,
            first_check_delay_seconds=first_check_delay_seconds,
            max_jobs=max_jobs,
            max_clips_bytes=max_clips_bytes,
        )
        if not answer["found"]:
            return None
        return CheckRead(
            asked={
                str(row["job_id"]): None
                if row["age_seconds"] is None
                else float(row["age_seconds"])
                for row in answer["asked"]
            },
            more_pending=int(answer["more_pending"]),
            counts=_counts(answer["counts"]),
            clips=_capped_clips(answer["clips"]),
        )

    async def apply_check_results(
        self,
        project_id: UUID,
        results: Mapping[str, str],
        keys: Sequence[str],
        max_clips_bytes: int | None,
    ) -> CheckWrite:
        answer = await self._call(
            calls.APPLY_CHECK_RESULTS,
            project_id=project_id,
            results=dict(results),
            keys=list(keys),
            max_clips_bytes=max_clips_bytes,
        )
        if not answer["found"]:
            return CheckWrite(False, {}, {}, ClipCounts(0, 0, 0, 0), None)
        return CheckWrite(
            found=True,
            changed=dict(answer["changed"]),
            values=dict(answer["values"]),
            counts=_counts(answer["counts"]),
            clips=_capped_clips(answer["clips"]),
        )

    async def project_visible_to(self, project_id: UUID, user: UserCaller) -> bool:
        return bool(
            await self._call_as_user(calls.CALLER_CAN_SEE_PROJECT, user, project_id=project_id)
        )

    async def ingest_result(
        self, job_id: str, result: str, reason: str | None, first_check_delay_seconds: float
    ) -> IngestOutcome:
        answer = await self._call(
            calls.INGEST_RESULT,
            job_id=job_id,
            result=result,
            reason=reason,
            first_check_delay_seconds=first_check_delay_seconds,
        )
        return IngestOutcome(
            kind=_stored_outcome(answer["outcome"]),
            project_ids=tuple(_uuid(project) for project in answer["project_ids"]),
        )

    async def note_job_error(self, job_id: str, error: str) -> bool:
        return bool(await self._call(calls.NOTE_JOB_ERROR, job_id=job_id, error=error))

    async def failure_reasons(self, project_id: UUID, job_ids: Sequence[str]) -> dict[str, str]:
        answer = await self._call(
            calls.FAILURE_REASONS, project_id=project_id, job_ids=list(job_ids)
        )
        return {str(job_id): str(reason) for job_id, reason in answer.items()}

    async def claim_due_jobs(
        self, owner: str, limit: int, lease_seconds: float, *, per_project: int | None = None
    ) -> list[TrackedJob]:
        answer = await self._call(
            calls.CLAIM_DUE_JOBS,
            owner=owner,
            limit=limit,
            lease_seconds=lease_seconds,
            per_project=limit if per_project is None else per_project,
        )
        return [_tracked(row["job_id"], row) for row in answer]

    async def set_tracking_limits(self, max_pending_per_project: int) -> int:
        answer = await self._call(
            calls.SET_TRACKING_LIMITS, max_pending_per_project=max_pending_per_project
        )
        return int(answer["over_limit"])

    async def finish_round(self, owner: str, outcomes: Sequence[PollOutcome]) -> RoundOutcome:
        payload = [
            {
                "project_id": str(o.project_id),
                "job_id": o.job_id,
                "result": o.result,
                "reason": o.reason,
                "next_check_in_seconds": o.next_check_in_seconds,
                "progress": o.progress,
            }
            for o in outcomes
        ]
        # The round with Runware's progress reports, still one call.
        answer = await self._call(calls.FINISH_POLL_ROUND, owner=owner, outcomes=payload)
        return RoundOutcome(
            changed={p: dict(changed) for p, changed in _by_project(answer["changed"]).items()},
            refused={p: str(reason) for p, reason in _by_project(answer["refused"]).items()},
            rescheduled=int(answer["rescheduled"]),
        )

    async def drain_changes(
        self, limit: int, first_check_delay_seconds: float, spread_seconds: float
    ) -> DrainOutcome:
        answer = await self._call(
            calls.DRAIN_CHANGES,
            limit=limit,
            first_check_delay_seconds=first_check_delay_seconds,
            spread_seconds=spread_seconds,
        )
        return DrainOutcome(
            rows=int(answer["rows"]),
            projects=int(answer["projects"]),
            refused={p: str(reason) for p, reason in _by_project(answer["refused"]).items()},
        )

    async def resync_page(
        self,
        after: UUID | None,
        limit: int,
        first_check_delay_seconds: float,
        spread_seconds: float,
    ) -> ResyncPage:
        answer = await self._call(
            calls.RESYNC_PAGE,
            after=after,
            limit=limit,
            first_check_delay_seconds=first_check_delay_seconds,
            spread_seconds=spread_seconds,
        )
        last = answer["last"]
        return ResyncPage(
            last=None if last is None else _uuid(last),
            scanned=int(answer["scanned"]),
            reconciled=int(answer["reconciled"]),
            refused={p: str(reason) for p, reason in _by_project(answer["refused"]).items()},
        )

    async def renew_leases(self, owner: str, lease_seconds: float) -> int:
        return int(await self._call(calls.RENEW_LEASES, owner=owner, lease_seconds=lease_seconds))

    async def release_leases(self, owner: str) -> int:
        return int(await self._call(calls.RELEASE_LEASES, owner=owner))

    async def make_due_now(self, limit: int) -> int:
        return int(await self._call(calls.MAKE_DUE_NOW, limit=limit))

    async def purge(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        answer = await self._call(calls.PURGE, older_than_seconds=older_than_seconds, limit=limit)
        return int(answer["jobs"]), int(answer["parked"])

    async def purge_archive(self, older_than_seconds: float, limit: int) -> tuple[int, int]:
        answer = await self._call(
            calls.PURGE_ARCHIVE, older_than_seconds=older_than_seconds, limit=limit
        )
        return int(answer["clips"]), int(answer["copies"])

    async def projects_with_pending(self, after: UUID | None, limit: int) -> list[UUID]:
        answer = await self._call(calls.PROJECTS_WITH_PENDING, after=after, limit=limit)
        return [_uuid(value) for value in answer]

    async def pending_stats(self) -> PendingStats:
        answer = await self._call(calls.PENDING_STATS)
        return PendingStats(
            pending=int(answer["pending"]),
            oldest_age_seconds=float(answer["oldest_age_seconds"]),
            untrackable=int(answer.get("untrackable", 0)),
            changes_waiting=int(answer.get("changes_waiting", 0)),
        )

    # --- The operator's view (OperatorStore) -------------------------------------------------

    async def record_heartbeat(self, heartbeat: ReplicaHeartbeat) -> None:
        await self._call(
            calls.RECORD_HEARTBEAT,
            owner=heartbeat.owner,
            version=heartbeat.version,
            started_at=heartbeat.started_at,
            heartbeat_seconds=heartbeat.interval_seconds,
            feed_state=heartbeat.feed_state,
            leases_held=heartbeat.leases_held,
            last_sweep_at=heartbeat.last_sweep_at,
        )

    async def forget_replica(self, owner: str) -> None:
        await self._call(calls.FORGET_REPLICA, owner=owner)

    async def operator_overview(self, oldest_limit: int) -> Mapping[str, Any]:
        return dict(await self._call(calls.OPERATOR_OVERVIEW, oldest_limit=oldest_limit))

    async def operator_project(self, project_id: UUID) -> Mapping[str, Any] | None:
        answer = await self._call(calls.OPERATOR_PROJECT, project_id=project_id)
        return None if answer is None else dict(answer)

    async def operator_find(self, id_: UUID) -> Mapping[str, Any]:
        return dict(await self._call(calls.OPERATOR_FIND, id=id_))

    async def ping(self) -> None:
        await self._caller.ping()

    async def close(self) -> None:
        await self._caller.close()

    # --- Archiving (ArchiveStore) -------------------------------------------------------------

    async def set_archiving(self, enabled: bool) -> int:
        answer = await self._call(calls.SET_ARCHIVING, enabled=enabled)
        return int(answer["backlog"])

    async def claim_archive_tasks(
        self, owner: str, limit: int, lease_seconds: float, max_attempts: int
    ) -> list[ArchiveTask]:
        answer = await self._call(
            calls.CLAIM_ARCHIVE_TASKS,
            owner=owner,
            limit=limit,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
        )
        return [
            ArchiveTask(
                project_id=_uuid(row["project_id"]),
                job_id=str(row["job_id"]),
                source_url=str(row["source_url"]),
                attempts=int(row["attempts"]),
            )
            for row in answer
        ]

    async def renew_archive_leases(self, owner: str, lease_seconds: float) -> int:
        return int(
            await self._call(calls.RENEW_ARCHIVE_LEASES, owner=owner, lease_seconds=lease_seconds)
        )

    async def release_archive_leases(self, owner: str) -> int:
        return int(await self._call(calls.RELEASE_ARCHIVE_LEASES, owner=owner))

    async def archive_succeeded(
        self, task: ArchiveTask, archived: ArchivedObject
    ) -> ArchiveSucceeded:
        answer = await self._call(
            calls.ARCHIVE_SUCCEEDED,
            project_id=task.project_id,
            job_id=task.job_id,
            source_url=task.source_url,
            archived_url=archived.archived_url,
            object_path=archived.object_path,
            size_bytes=archived.size_bytes,
            sha256=archived.sha256,
        )
        state: ArchiveSucceeded = answer["state"]
        return state

    async def archive_failed(
        self,
        task: ArchiveTask,
        error: str,
        *,
        permanent: bool,
        retry_in_seconds: float,
        max_attempts: int,
    ) -> ArchiveFailed:
        answer = await self._call(
            calls.ARCHIVE_FAILED,
            project_id=task.project_id,
            job_id=task.job_id,
            source_url=task.source_url,
            error=error,
            permanent=permanent,
            retry_in_seconds=retry_in_seconds,
            max_attempts=max_attempts,
        )
        state: ArchiveFailed = answer["state"]
        return state

    async def archive_backfill_page(
        self,
        after: UUID | None,
        limit: int,
        source_prefixes: Sequence[str],
        archived_prefix: str,
    ) -> ArchiveBackfillPage:
        answer = await self._call(
            calls.ARCHIVE_BACKFILL_PAGE,
            after=after,
            limit=limit,
            source_prefixes=list(source_prefixes),
            archived_prefix=archived_prefix,
        )
        last = answer["last"]
        return ArchiveBackfillPage(
            last=None if last is None else _uuid(last),
            scanned=int(answer["scanned"]),
            queued=int(answer["queued"]),
        )

    async def project_archive_states(self, project_id: UUID) -> dict[str, str]:
        answer = await self._call(calls.PROJECT_ARCHIVE_STATES, project_id=project_id)
        return {str(job_id): str(state) for job_id, state in answer.items()}

    async def archive_stats(self, *, by_state: bool = False) -> ArchiveStats:
        answer = await self._call(calls.ARCHIVE_STATS, by_state=by_state)
        return ArchiveStats(
            enabled=bool(answer["enabled"]),
            backlog=int(answer["backlog"]),
            oldest_age_seconds=float(answer["oldest_age_seconds"]),
            by_state={str(k): int(v) for k, v in answer["by_state"].items()},
        )
