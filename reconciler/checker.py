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
    CheckError,
    TaskStatus,
    UrlPolicy,
    check_response,
    decide_pending_job,
    is_trackable,
    pending_job_ids,
    results_to_write,
)
from reconciler.config import DEFAULTS
from reconciler.ports import RunwareApi, RunwareCredentialsRejected, Store

log = logging.getLogger(__name__)


class ProjectNotFound(LookupError):
    pass


@dataclass(frozen=True)
class CheckPolicy:
    # Defaults: the settings' declarations (reconciler/config.py), written once there.
    first_check_delay_seconds: float = DEFAULTS.first_check_delay_seconds
    unknown_task_grace_seconds: float = DEFAULTS.unknown_task_grace_seconds
    url_policy: UrlPolicy = field(default_factory=lambda: UrlPolicy(DEFAULTS.allowed_url_hosts))


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
        see; any other project is ProjectNotFound, as if it did not exist (no existence leak)."""
        if isinstance(caller, UserCaller) and not await self._store.project_visible_to(
            project_id, caller
        ):
            raise ProjectNotFound(str(project_id))
        return await self.check(project_id)

    async def check(self, project_id: UUID) -> dict[str, Any]:
        """The seed's response body for `project_id`; raises ProjectNotFound."""
        # Tracking waits until Runware has answered: jobs that settle in this very call need
        # no tracking row (W1: 100 bookkeeping rows per 50-clip check before, 0 now).
        snapshot = await self._store.sync_project(
            project_id, self._policy.first_check_delay_seconds, track=False
        )
        if snapshot is None:
            raise ProjectNotFound(str(project_id))
        every_pending = pending_job_ids(snapshot.clips)
        # A key too long to be a task id is reported in its detail, never sent to Runware.
        pending = [job_id for job_id in every_pending if is_trackable(job_id)]
        statuses = await self.statuses(pending)
        # A job not tracked yet is as young as this check.
        ages = {job_id: tracked.age_seconds for job_id, tracked in snapshot.pending_jobs.items()}
        decisions = [
            decide_pending_job(
                job_id,
                statuses,
                job_age_seconds=ages.get(job_id, 0.0),
                unknown_task_grace_seconds=self._policy.unknown_task_grace_seconds,
                url_policy=self._policy.url_policy,
            )
            for job_id in every_pending
        ]
        clips = snapshot.clips
        results = results_to_write(decisions)
        # Runware's reason for a failure is kept on the job's tracking row, as a poll round keeps
        # it, so the operator view can say why the clip failed (the write below then settles
        # the row as failed). A job this check never tracked has no row to keep it on.
        for decision in decisions:
            if (
                decision.write == FAILED
                and decision.error is not None
                and decision.job_id in snapshot.pending_jobs
            ):
                await self._store.note_job_error(decision.job_id, decision.error)
        if results:  # the seed's rule: write only when something changed
            outcome = await self._store.apply_results(project_id, results)
            if not outcome.found:  # deleted while we asked Runware
                raise ProjectNotFound(str(project_id))
            clips = outcome.clips
        untracked = [
            job_id
            for job_id in pending
            if job_id not in results and job_id not in snapshot.pending_jobs
        ]
        if untracked:  # still pending: the engine polls them from now on
            await self._store.track_jobs(
                project_id, untracked, self._policy.first_check_delay_seconds
            )
        return check_response(str(project_id), clips, decisions)
