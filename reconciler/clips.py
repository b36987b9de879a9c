"""The clips domain: what a job's status means for its clip, and the seed's response shape.

Pure logic, no I/O. A clip value in `projects.clips` is `"pending"`, `"failed"` or a video URL.
A value only ever moves away from `"pending"` (invariant I1); the database enforces that, this
module only decides *what* a pending clip should become.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

PENDING = "pending"
FAILED = "failed"

# Runware error codes meaning "Runware no longer knows this task" (expired or never existed).
# They are terminal only after a grace period: a fresh task may not be visible everywhere yet.
UNKNOWN_TASK_CODES = frozenset({"taskNotFound", "taskExpired", "taskFailedOrNotFound"})

DEFAULT_ALLOWED_URL_HOSTS = ("vm.runware.ai", "im.runware.ai")


# --- What Runware says about one task -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Processing:
    """Any non-terminal status (`processing`, `pending`, `queued`, …)."""

    progress: int | None = None


@dataclass(frozen=True, slots=True)
class Succeeded:
    video_url: str
    video_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """Runware reported the generation itself as failed."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class UnknownTask:
    """Runware no longer knows the task (`taskNotFound`, `taskExpired`, …)."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CheckError:
    """The status check itself failed (network, 5xx after retries, bad credentials)."""

    message: str


TaskStatus: TypeAlias = Processing | Succeeded | Failed | UnknownTask | CheckError


def status_from_error(code: str | None, message: str | None) -> Failed | UnknownTask:
    """Classify a Runware error object that names a task."""
    code = code or "unknownError"
    message = message or code
    if code in UNKNOWN_TASK_CODES:
        return UnknownTask(code, message)
    return Failed(code, message)


# --- Clip values ----------------------------------------------------------------------------


def is_pending(value: object) -> bool:
    return value == PENDING


def is_video_url(value: object) -> bool:
    return isinstance(value, str) and value not in (PENDING, FAILED)


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which video URLs may be written to the database: https on an allow-listed host."""

    allowed_hosts: frozenset[str] = frozenset(DEFAULT_ALLOWED_URL_HOSTS)

    def rejects(self, url: str) -> str | None:
        """Why `url` must not be written, or None when it is acceptable."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return "video URL is not a valid URL"
        if parts.scheme != "https":
            return "video URL is not https"
        host = (parts.hostname or "").lower()
        if host not in self.allowed_hosts:
            return f"video URL host {host!r} is not on the allow-list"
        return None


# --- Deciding what a pending clip becomes ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one pending job after a status check.

    `write` is the value to store (a URL or "failed"), or None to leave the clip pending.
    `error` explains a failure or a problem with the check; it is recorded, never written
    into `clips`.
    """

    job_id: str
    write: str | None
    error: str | None = None
    check_failed: bool = False


def decide(
    job_id: str,
    status: TaskStatus,
    *,
    job_age_seconds: float,
    unknown_task_grace_seconds: float,
    url_policy: UrlPolicy,
) -> Decision:
    match status:
        case Succeeded(video_url=url):
            reason = url_policy.rejects(url)
            if reason is not None:
                return Decision(job_id, None, reason, check_failed=True)
            return Decision(job_id, url)
        case Failed(code=code, message=message):
            return Decision(job_id, FAILED, f"{code}: {message}")
        case UnknownTask(code=code, message=message):
            if job_age_seconds >= unknown_task_grace_seconds:
                return Decision(job_id, FAILED, f"{code}: {message}")
            return Decision(job_id, None, f"{code}: {message} (within grace period)")
        case CheckError(message=message):
            return Decision(job_id, None, message, check_failed=True)
        case Processing():
            return Decision(job_id, None)


def results_to_write(decisions: Iterable[Decision]) -> dict[str, str]:
    return {d.job_id: d.write for d in decisions if d.write is not None}


def pending_job_ids(clips: Mapping[str, object]) -> list[str]:
    return [job_id for job_id, value in clips.items() if is_pending(value)]


# --- The seed's response (check-clips-status) -----------------------------------------------

DetailStatus = Literal["completed", "pending", "failed", "error"]


def _detail(
    job_id: str,
    status: DetailStatus,
    video_url: str | None,
    already_processed: bool,
    error: str | None = None,
) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "jobId": job_id,
        "status": status,
        "videoUrl": video_url,
        "alreadyProcessed": already_processed,
    }
    if error is not None:
        detail["error"] = error
    return detail


def check_response(
    project_id: str,
    clips: Mapping[str, object],
    checked: Sequence[Decision],
) -> dict[str, Any]:
    """The edge function's response body, built from the clips as they are now stored.

    `clips` is the map after the guarded write; `checked` holds a decision for every job that
    was pending before the check. Jobs settled before this call are `alreadyProcessed`.
    """
    by_job = {d.job_id: d for d in checked}
    details: list[dict[str, Any]] = []
    for job_id, value in clips.items():
        decision = by_job.get(job_id)
        if decision is None:
            if is_video_url(value):
                details.append(_detail(job_id, "completed", str(value), True))
            elif value == FAILED:
                details.append(_detail(job_id, "failed", None, True))
            else:  # pending but not checked: only when it appeared during the check
                details.append(_detail(job_id, "pending", None, False))
        elif is_video_url(value):
            details.append(_detail(job_id, "completed", str(value), False))
        elif value == FAILED:
            details.append(_detail(job_id, "failed", None, False, decision.error))
        elif decision.check_failed:
            details.append(_detail(job_id, "error", None, False, decision.error))
        else:
            details.append(_detail(job_id, "pending", None, False))
    values = list(clips.values())
    return {
        "success": True,
        "project_id": project_id,
        "total_clips": len(values),
        "completed": sum(1 for v in values if is_video_url(v)),
        "pending": sum(1 for v in values if is_pending(v)),
        "failed": sum(1 for v in values if v == FAILED),
        "clips": dict(clips),
        "details": details,
    }


def error_response(message: str) -> dict[str, Any]:
    return {"success": False, "error": message}
