"""The manual check (`check-clips-status`): read a project, ask Runware about its pending jobs
in as few requests as the batch size allows, write what settled in one guarded statement.

Depends only on the ports, so the endpoint, the CLI and the tests share it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from reconciler.callers import Caller, UserCaller
from reconciler.clips import (
    FAILED,
    NO_REASON_RECORDED,
    PENDING,
    CheckError,
    Decision,
    TaskStatus,
    UrlPolicy,
    check_response,
    decide_pending_job,
    is_trackable,
    pending_job_ids,
    results_to_write,
    truncated_check_response,
)
from reconciler.config import DEFAULTS
from reconciler.ports import RunwareApi, RunwareCredentialsRejected, Store

log = logging.getLogger(__name__)

# The store looks up at most this many failed jobs' reasons per call.
_REASONS_PER_CALL = 1000


class ProjectNotFound(LookupError):
    pass


@dataclass(frozen=True)
class CheckLimits:
    """What one check may cost. `max_jobs`: pending jobs asked about (Runware requests are
    about ⌈max_jobs / batch size⌉); `max_clips_bytes`: the largest clips column (JSON text)
    read and answered whole. None: no limit (full-access callers, the CLI)."""

    max_jobs: int | None = None
    max_clips_bytes: int | None = None


UNLIMITED = CheckLimits()


@dataclass(frozen=True)
class CheckPolicy:
    # Defaults: the settings' declarations (reconciler/config.py), written once there.
    first_check_delay_seconds: float = DEFAULTS.first_check_delay_seconds
    unknown_task_grace_seconds: float = DEFAULTS.unknown_task_grace_seconds
    url_policy: UrlPolicy = field(default_factory=lambda: UrlPolicy(DEFAULTS.allowed_url_hosts))
    # A signed-in user's check: the caps RECONCILER_USER_CHECK_MAX_* declare.
    user_limits: CheckLimits = field(
        default_factory=lambda: CheckLimits(
            DEFAULTS.user_check_max_jobs, DEFAULTS.user_check_max_clips_bytes
        )
    )


class ClipChecker:
    def __init__(self, store: Store, runware: RunwareApi, policy: CheckPolicy) -> None:
        self._store = store
        self._runware = runware
        self._policy = policy

    @property
    def policy(self) -> CheckPolicy:
        return self._policy

    async def statuses(self, job_ids: Sequence[str]) -> dict[str, TaskStatus]:
        """Runware's answer for each job; rejected credentials become a per-job error."""
        if not job_ids:
            return {}
        try:
            return await self._runware.get_statuses(job_ids)
        except RunwareCredentialsRejected as error:
            log.error("Runware rejected the API key: %s", error)
            return {job_id: CheckError(str(error)) for job_id in job_ids}

    async def check_for(self, caller: Caller, project_id: UUID) -> dict[str, Any]:
        """`check` on behalf of `caller`: a user sees only the projects the database lets them
        see; any other project is ProjectNotFound, as if it did not exist (no existence leak).
        A user's check is bounded (CheckLimits): it never costs more Runware requests, nor
        more memory, than the user check's caps allow, whatever the project holds."""
        if isinstance(caller, UserCaller):
            if not await self._store.project_visible_to(project_id, caller):
                raise ProjectNotFound(str(project_id))
            return await self.check(project_id, self._policy.user_limits)
        return await self.check(project_id)

    async def check(self, project_id: UUID, limits: CheckLimits = UNLIMITED) -> dict[str, Any]:
        """The seed's response body for `project_id`; raises ProjectNotFound. Within `limits`:
        at most `max_jobs` pending jobs asked about (the others answer "pending", their
        scheduled poll covers them), and a truncated answer (`truncated_check_response`) when
        the clips are larger than `max_clips_bytes`."""
        # Tracking waits until Runware has answered: jobs that settle in this very call need
        # no tracking row (W1: 100 bookkeeping rows per 50-clip check before, 0 now).
        read = await self._store.read_for_check(
            project_id,
            self._policy.first_check_delay_seconds,
            limits.max_jobs,
            limits.max_clips_bytes,
        )
        if read is None:
            raise ProjectNotFound(str(project_id))
        asked = list(read.asked)
        statuses = await self.statuses(asked)
        decisions = [
            decide_pending_job(
                job_id,
                statuses,
                # A job not tracked yet is as young as this check.
                job_age_seconds=age if age is not None else 0.0,
                unknown_task_grace_seconds=self._policy.unknown_task_grace_seconds,
                url_policy=self._policy.url_policy,
            )
            for job_id, age in read.asked.items()
        ]
        if read.clips is not None:
            # Every other pending clip: a key that cannot be a task id says why (never sent to
            # Runware); one beyond the check's cap is simply still pending.
            decisions += [
                decide_pending_job(
                    job_id,
                    {},
                    job_age_seconds=0.0,
                    unknown_task_grace_seconds=self._policy.unknown_task_grace_seconds,
                    url_policy=self._policy.url_policy,
                )
                if not is_trackable(job_id)
                else Decision(job_id, None)
                for job_id in pending_job_ids(read.clips)
                if job_id not in read.asked
            ]
        tracked = {job_id for job_id, age in read.asked.items() if age is not None}
        results = results_to_write(decisions)
        # Runware's reason for a failure is kept on the job's tracking row, as a poll round keeps
        # it, so the operator view can say why the clip failed (the write below then settles
        # the row as failed). A job this check never tracked has no row to keep it on.
        for decision in decisions:
            if (
                decision.write == FAILED
                and decision.error is not None
                and decision.job_id in tracked
            ):
                await self._store.note_job_error(decision.job_id, decision.error)
        clips, counts, values = read.clips, read.counts, dict.fromkeys(asked, PENDING)
        if results:  # the seed's rule: write only when something changed
            outcome = await self._store.apply_check_results(
                project_id, results, asked, limits.max_clips_bytes
            )
            if not outcome.found:  # deleted while we asked Runware
                raise ProjectNotFound(str(project_id))
            clips, counts, values = outcome.clips, outcome.counts, outcome.values
        untracked = [job_id for job_id in asked if job_id not in results and job_id not in tracked]
        if untracked:  # still pending: the engine polls them from now on
            await self._store.track_jobs(
                project_id, untracked, self._policy.first_check_delay_seconds
            )
        if clips is not None:
            answer = check_response(str(project_id), clips, decisions)
        else:
            answer = truncated_check_response(
                str(project_id),
                total=counts.total,
                completed=counts.completed,
                pending=counts.pending,
                failed=counts.failed,
                values=values,
                checked=decisions,
            )
        await self._name_failures(project_id, answer["details"])
        return answer

    async def _name_failures(self, project_id: UUID, details: list[dict[str, Any]]) -> None:
        """Every failed clip's detail says why (`error`), also one that failed before this
        check: the reason kept on its job's row or with its webhook result."""
        unnamed = [d for d in details if d["status"] == "failed" and "error" not in d]
        for start in range(0, len(unnamed), _REASONS_PER_CALL):
            page = unnamed[start : start + _REASONS_PER_CALL]
            reasons = await self._store.failure_reasons(project_id, [d["jobId"] for d in page])
            for detail in page:
                detail["error"] = reasons.get(detail["jobId"], NO_REASON_RECORDED)
