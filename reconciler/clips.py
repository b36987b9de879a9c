"""The clips domain: what a job's status means for its clip, and the seed's response shape.

Pure logic, no I/O. A clip value in `projects.clips` is `"pending"`, `"failed"` or a video URL.
A value only ever moves away from `"pending"` (invariant I1); the database enforces that, this
module only decides *what* a pending clip should become.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from reconciler.schedule import PollPolicy

PENDING = "pending"
FAILED = "failed"

# Runware error codes meaning "Runware no longer knows this task" (expired or never existed).
# They are terminal only after a grace period: a fresh task may not be visible everywhere yet.
UNKNOWN_TASK_CODES = frozenset({"taskNotFound", "taskExpired", "taskFailedOrNotFound"})
# Error codes about our request, not about the video: a per-task entry with one of these says
# nothing of the generation, so the clip stays pending (I11) and the check counts as failed.
OUR_SIDE_CODES = frozenset({"invalidApiKey", "insufficientCredits", "rateLimitExceeded"})

DEFAULT_ALLOWED_URL_HOSTS = ("vm.runware.ai", "im.runware.ai")

# Runware task ids are UUIDs: a clip key is tracked only in the canonical text form, 8-4-4-4-12
# hexadecimal digits. Either case is accepted (a UUID's digits are case-insensitive) and the key
# is kept as written, never normalised: it must match the clip key and Runware's answer
# verbatim. The SQL core applies the same rule (reconciler.is_trackable); any other key is
# recorded as not tracked and never sent to Runware, where one malformed id in a batch could
# cost every other project's jobs in it their check.
_TASK_ID = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
NOT_A_TASK_ID = "job id is not a Runware task id (a UUID); it is not tracked"


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

    @property
    def reason(self) -> str:
        """As recorded with the clip's "failed"."""
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class UnknownTask:
    """Runware no longer knows the task (`taskNotFound`, `taskExpired`, …)."""

    code: str
    message: str

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class CheckError:
    """The status check itself failed (network, 5xx after retries, bad credentials)."""

    message: str


TaskStatus: TypeAlias = Processing | Succeeded | Failed | UnknownTask | CheckError


# What a failed clip says when no reason was ever recorded for it (the overview's SQL says the
# same: reconciler_operator_overview).
NO_REASON_RECORDED = "no reason recorded"


def status_from_error(code: str | None, message: str | None) -> Failed | UnknownTask | CheckError:
    """Classify a Runware error object that names a task."""
    code = code or "unknownError"
    message = message or code
    if code in UNKNOWN_TASK_CODES:
        return UnknownTask(code, message)
    if code in OUR_SIDE_CODES:
        return CheckError(f"{code}: {message}")
    return Failed(code, message)


# --- Clip values ----------------------------------------------------------------------------


def is_trackable(job_id: str) -> bool:
    """Whether a clip key can be a Runware task id (a UUID), and so be tracked and polled."""
    return _TASK_ID.fullmatch(job_id) is not None


def untrackable_reason(job_id: str) -> str:
    """Why a key that `is_trackable` refuses is not tracked (SQL: reconciler.untrackable_reason)."""
    return NOT_A_TASK_ID


def over_limit_reason(limit: int) -> str:
    """Why a pending key beyond RECONCILER_MAX_PENDING_PER_PROJECT is not tracked (SQL:
    reconciler.over_limit_reason)."""
    return (
        f"project has more than {limit} pending jobs (RECONCILER_MAX_PENDING_PER_PROJECT);"
        " it is not tracked"
    )


def is_pending(value: object) -> bool:
    return value == PENDING


def is_video_url(value: object) -> bool:
    return isinstance(value, str) and value not in (PENDING, FAILED)


_DEFAULT_PORTS = {"https": 443, "http": 80}
# The only URL shape accepted: a lower- or upper-case http(s) scheme, `//`, a host of ASCII
# letters, digits, dots and hyphens, an optional port of digits, then a path, query or
# fragment (or nothing). No user info, no IPv6 literal, no percent-encoding in the host.
_URL_SHAPE = re.compile(
    r"(?P<scheme>[A-Za-z]+)://(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?#].*)?"
)
_HOST_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")


@dataclass(frozen=True, slots=True, order=True)
class AllowedOrigin:
    """One allow-list entry: a scheme, a host (lower case) and a port."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        if _DEFAULT_PORTS.get(self.scheme) == self.port:
            return self.host if self.scheme == "https" else f"{self.scheme}://{self.host}"
        return f"{self.scheme}://{self.host}:{self.port}"


def _origin_of(text: str) -> tuple[AllowedOrigin | None, str | None]:
    """The origin of an http(s) URL read strictly (see UrlPolicy), or why it has none."""
    if any(not 0x21 <= ord(c) <= 0x7E for c in text):
        return None, "contains whitespace, control or non-ASCII characters"
    if "\\" in text:
        return None, "contains a backslash"
    match = _URL_SHAPE.fullmatch(text)
    if match is None:
        authority = re.split(r"[/?#]", text.partition("://")[2], maxsplit=1)[0]
        if "@" in authority:
            return None, "carries user info"
        return None, "is not a plain http(s) URL with a host name"
    scheme = match["scheme"].lower()
    if scheme not in _DEFAULT_PORTS:
        return None, f"scheme {scheme!r} is not http(s)"
    host = match["host"].lower()
    if host.endswith("."):
        return None, "host ends with a dot"
    if not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return None, f"host {host!r} is not a valid host name"
    port = int(match["port"]) if match["port"] is not None else _DEFAULT_PORTS[scheme]
    if not 0 < port < 65536:
        return None, f"port {port} is out of range"
    return AllowedOrigin(scheme, host, port), None


def parse_allowed_origin(entry: str) -> AllowedOrigin:
    """An allow-list entry: a bare host (`https` on port 443) or an exact origin
    (`http://127.0.0.1:8100`). Raises ValueError naming what is wrong."""
    text = entry.strip()
    if "://" not in text:
        text = f"https://{text}"
    origin, problem = _origin_of(text)
    if origin is None:
        raise ValueError(f"{entry!r} {problem}")
    rest = text.split("://", 1)[1].split("/", 1)
    if len(rest) > 1 and rest[1]:
        raise ValueError(f"{entry!r}: an entry is a host or an origin, without a path")
    return origin


@dataclass(frozen=True, slots=True)
class UrlPolicy:
    """Which video URLs may be written to the database.

    Only URLs that every parser (Python's, a browser's, curl's) reads the same way, on an
    allow-listed origin: `https://evil.example\\@vm.runware.ai/` is `vm.runware.ai` to
    `urlsplit` and `evil.example` to a browser, so backslashes, user info, whitespace, control
    and non-ASCII characters, percent-encoded hosts and trailing dots are all refused. A port
    other than the scheme's default passes only when an entry names that exact origin.
    """

    allowed: frozenset[AllowedOrigin] = frozenset(
        parse_allowed_origin(h) for h in DEFAULT_ALLOWED_URL_HOSTS
    )

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> UrlPolicy:
        return cls(frozenset(parse_allowed_origin(e) for e in entries))

    def rejects(self, url: str) -> str | None:
        """Why `url` must not be written, or None when it is acceptable."""
        origin, problem = _origin_of(url)
        if origin is None:
            return f"video URL {problem}"
        if origin not in self.allowed:
            return f"video URL origin {str(origin)!r} is not on the allow-list"
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
    # "failed" because Runware kept saying "still working" past the give-up age.
    gave_up: bool = False


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
        case Failed():
            return Decision(job_id, FAILED, status.reason)
        case UnknownTask():
            if job_age_seconds >= unknown_task_grace_seconds:
                return Decision(job_id, FAILED, status.reason)
            return Decision(job_id, None, f"{status.reason} (within grace period)")
        case CheckError(message=message):
            return Decision(job_id, None, message, check_failed=True)
        case Processing():
            return Decision(job_id, None)


# The reason recorded when Runware's answer names some of the tasks asked about but not this one.
NO_ANSWER = "Runware gave no answer for this job"


def decide_pending_job(
    job_id: str,
    answers: Mapping[str, TaskStatus],
    *,
    job_age_seconds: float,
    unknown_task_grace_seconds: float,
    url_policy: UrlPolicy,
    give_up: PollPolicy | None = None,
) -> Decision:
    """What one pending clip becomes, given Runware's answers to a check: the one decision the
    manual check and the poller share.

    A key that cannot be a task id was never asked about and stays pending; a job missing from
    the answers is a failed check. With `give_up`, a job Runware itself still reports as not
    done (working, or unknown within the grace period) past the give-up age becomes "failed".
    A check that failed on our side never does (I11): it says nothing about the video.
    """
    if not is_trackable(job_id):
        return Decision(job_id, None, untrackable_reason(job_id), check_failed=True)
    decision = decide(
        job_id,
        answers.get(job_id, CheckError(NO_ANSWER)),
        job_age_seconds=job_age_seconds,
        unknown_task_grace_seconds=unknown_task_grace_seconds,
        url_policy=url_policy,
    )
    if (
        give_up is None
        or decision.write is not None
        or decision.check_failed
        or not give_up.gives_up(job_age_seconds)
    ):
        return decision
    reason = give_up.give_up_reason(job_age_seconds, decision.error)
    return Decision(job_id, FAILED, reason, gave_up=True)


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


def truncated_check_response(
    project_id: str,
    *,
    total: int,
    completed: int,
    pending: int,
    failed: int,
    values: Mapping[str, object],
    checked: Sequence[Decision],
) -> dict[str, Any]:
    """The answer when the project's clips are larger than the caller may have serialised
    (RECONCILER_USER_CHECK_MAX_CLIPS_BYTES): the seed's shape and counts, with `clips` and
    `details` holding only the jobs this check asked Runware about, and `"truncated": true`.
    Its size is bounded by the check's job cap, whatever the project holds."""
    asked = {d.job_id for d in checked}
    shown = {job_id: value for job_id, value in values.items() if job_id in asked}
    answer = check_response(project_id, shown, checked)
    answer.update(total_clips=total, completed=completed, pending=pending, failed=failed)
    answer["truncated"] = True
    return answer


def error_response(message: str) -> dict[str, Any]:
    return {"success": False, "error": message}
