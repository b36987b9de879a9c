"""What the operator sees, as frozen values, and the two reads that build them.

`reconciler status`, `GET /admin` and the JSON under `/admin/api/` all render these; `as_json()`
is the one JSON shape for each (documented in the README, "Operator view"). The reads cost one
SQL function call each, bounded by the unsettled jobs (I10), never by the number of projects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from reconciler.ports import FullStore


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """One replica as its last heartbeat described it; `alive` is false once it has missed
    several heartbeats (it crashed or lost the database)."""

    owner: str
    version: str
    started_at: datetime
    last_seen_at: datetime
    feed_state: str
    leases_held: int
    last_sweep_at: datetime | None
    alive: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "version": self.version,
            "started_at": _time(self.started_at),
            "last_seen_at": _time(self.last_seen_at),
            "feed_state": self.feed_state,
            "leases_held": self.leases_held,
            "last_sweep_at": _time(self.last_sweep_at),
            "alive": self.alive,
        }


@dataclass(frozen=True, slots=True)
class AgeBucket:
    """How many unsettled jobs have waited this long (`label`: "<1m", "1-10m", …)."""

    label: str
    count: int

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "count": self.count}


@dataclass(frozen=True, slots=True)
class StuckJob:
    """An unsettled job: since when it is tracked, how often it was checked, when it is
    checked next, what the last check said, and Runware's last progress report (0-100)."""

    project_id: UUID
    job_id: str
    first_seen_at: datetime
    attempts: int
    next_check_at: datetime
    last_error: str | None
    progress: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": str(self.project_id),
            "job_id": self.job_id,
            "first_seen_at": _time(self.first_seen_at),
            "attempts": self.attempts,
            "next_check_at": _time(self.next_check_at),
            "last_error": self.last_error,
            "progress": self.progress,
        }


@dataclass(frozen=True, slots=True)
class RecentFailure:
    """A job that settled as "failed" (Runware's error, or the give-up age), and why."""

    project_id: UUID
    job_id: str
    settled_at: datetime
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": str(self.project_id),
            "job_id": self.job_id,
            "settled_at": _time(self.settled_at),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Overview:
    """Everything `reconciler status` shows. `archive_backlog` is None when archiving is not
    part of this installation."""

    generated_at: datetime
    replicas: list[ReplicaView]
    age_buckets: list[AgeBucket]
    oldest: list[StuckJob]
    failures_24h: list[RecentFailure]
    failure_reasons_24h: list[tuple[str, int]]
    parked_results: int
    archive_backlog: int | None

    @property
    def unsettled(self) -> int:
        return sum(bucket.count for bucket in self.age_buckets)

    def as_json(self) -> dict[str, Any]:
        return {
            "generated_at": _time(self.generated_at),
            "replicas": [replica.as_json() for replica in self.replicas],
            "unsettled": self.unsettled,
            "age_buckets": [bucket.as_json() for bucket in self.age_buckets],
            "oldest": [job.as_json() for job in self.oldest],
            "failures_24h": [failure.as_json() for failure in self.failures_24h],
            "failure_reasons_24h": [
                {"reason": reason, "count": count} for reason, count in self.failure_reasons_24h
            ],
            "parked_results": self.parked_results,
            "archive_backlog": self.archive_backlog,
        }


@dataclass(frozen=True, slots=True)
class ClipView:
    """One clip of a project with its tracking row, if any (a settled or never-tracked clip
    has none: attempts and next check are then None)."""

    job_id: str
    value: Any
    status: str
    attempts: int | None
    next_check_at: datetime | None
    last_error: str | None
    progress: int | None
    archive_state: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "value": self.value,
            "status": self.status,
            "attempts": self.attempts,
            "next_check_at": _time(self.next_check_at),
            "last_error": self.last_error,
            "progress": self.progress,
            "archive_state": self.archive_state,
        }


@dataclass(frozen=True, slots=True)
class ProjectView:
    project_id: UUID
    clips: list[ClipView]

    def as_json(self) -> dict[str, Any]:
        return {
            "project_id": str(self.project_id),
            "clips": [clip.as_json() for clip in self.clips],
        }


async def read_overview(store: FullStore, *, oldest_limit: int = 20) -> Overview:
    """The overview in one database call, plus the archive backlog (O(backlog)) when
    archiving is on."""
    answer = dict(await store.operator_overview(oldest_limit))
    archive = await store.archive_stats()
    answer["archive_backlog"] = archive.backlog if archive.enabled else None
    return overview_from_json(answer)


async def read_project_view(store: FullStore, project_id: UUID) -> ProjectView | None:
    """Every clip of one project with its job row and its archive state; None when the
    project does not exist."""
    answer = await store.operator_project(project_id)
    if answer is None:
        return None
    archived = await store.project_archive_states(project_id)
    view = project_view_from_json(answer)
    return ProjectView(
        project_id=view.project_id,
        clips=[replace(clip, archive_state=archived.get(clip.job_id)) for clip in view.clips],
    )


def overview_from_json(answer: Mapping[str, Any]) -> Overview:
    """Decodes the SQL function's answer, or `Overview.as_json()` read back (the shapes are
    the same), e.g. from the service's `/admin/api/overview`."""
    backlog = answer.get("archive_backlog")
    return Overview(
        generated_at=_parse_time(answer["generated_at"]),
        replicas=[_replica(row) for row in answer["replicas"]],
        age_buckets=[AgeBucket(str(b["label"]), int(b["count"])) for b in answer["age_buckets"]],
        oldest=[_stuck_job(row) for row in answer["oldest"]],
        failures_24h=[
            RecentFailure(
                project_id=_uuid(row["project_id"]),
                job_id=str(row["job_id"]),
                settled_at=_parse_time(row["settled_at"]),
                reason=str(row["reason"]),
            )
            for row in answer["failures_24h"]
        ],
        failure_reasons_24h=[
            (str(row["reason"]), int(row["count"])) for row in answer["failure_reasons_24h"]
        ],
        parked_results=int(answer["parked_results"]),
        # Archiving keeps its own backlog (reconciler_archive_stats), added by read_overview.
        archive_backlog=None if backlog is None else int(backlog),
    )


@dataclass(frozen=True, slots=True)
class Found:
    """What an id names: a project (`is_project`), and the projects holding it as a job."""

    is_project: bool
    job_projects: list[UUID]


async def find(store: FullStore, id_: UUID) -> Found:
    """A project id or a job id, looked up for the admin search."""
    answer = await store.operator_find(id_)
    return Found(
        is_project=bool(answer["project"]),
        job_projects=[_uuid(project) for project in answer["job_projects"]],
    )


def project_view_from_json(answer: Mapping[str, Any]) -> ProjectView:
    """Decodes the SQL function's answer, or `ProjectView.as_json()` read back."""
    return ProjectView(
        project_id=_uuid(answer["project_id"]),
        clips=[
            ClipView(
                job_id=str(row["job_id"]),
                value=row["value"],
                status=str(row["status"]),
                attempts=None if row["attempts"] is None else int(row["attempts"]),
                next_check_at=_parse_optional_time(row["next_check_at"]),
                last_error=row["last_error"],
                progress=_progress(row["progress"]),
                archive_state=row.get("archive_state"),
            )
            for row in answer["clips"]
        ],
    )


# --- Decoding the SQL functions' JSON (the same for both transports) --------------------------


def _uuid(value: object) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def _parse_time(value: object) -> datetime:
    # PostgreSQL writes timestamptz into JSON as ISO 8601 with an offset.
    return datetime.fromisoformat(str(value))


def _parse_optional_time(value: object) -> datetime | None:
    return None if value is None else _parse_time(value)


def _progress(value: object) -> int | None:
    return None if value is None else int(str(value))


def _replica(row: Mapping[str, Any]) -> ReplicaView:
    return ReplicaView(
        owner=str(row["owner"]),
        version=str(row["version"]),
        started_at=_parse_time(row["started_at"]),
        last_seen_at=_parse_time(row["last_seen_at"]),
        feed_state=str(row["feed_state"]),
        leases_held=int(row["leases_held"]),
        last_sweep_at=_parse_optional_time(row["last_sweep_at"]),
        alive=bool(row["alive"]),
    )


def _stuck_job(row: Mapping[str, Any]) -> StuckJob:
    return StuckJob(
        project_id=_uuid(row["project_id"]),
        job_id=str(row["job_id"]),
        first_seen_at=_parse_time(row["first_seen_at"]),
        attempts=int(row["attempts"]),
        next_check_at=_parse_time(row["next_check_at"]),
        last_error=row["last_error"],
        progress=_progress(row["progress"]),
    )
