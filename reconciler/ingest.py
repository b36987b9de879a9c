"""Ingesting Runware completion webhooks: each named task's result is applied or parked in
PostgreSQL before the sender hears 2xx (I3).

Runware does not sign webhooks, so the body is trusted only as far as the URL token goes; in
confirmation mode it is merely a hint and `getResponse` supplies the result that is written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.checker import CheckPolicy
from reconciler.clips import (
    FAILED,
    CheckError,
    Failed,
    Processing,
    Succeeded,
    TaskStatus,
    UnknownTask,
    is_trackable,
    untrackable_reason,
)
from reconciler.observability.context import log_context
from reconciler.ports import (
    TASK_OUTCOMES,
    RunwareApi,
    RunwareCredentialsRejected,
    Store,
    WebhookOutcome,
)

log = logging.getLogger(__name__)


class ConfirmationUnavailable(Exception):
    """Runware could not confirm the result now; the sender should retry later."""


def _no_jobs_yet() -> dict[WebhookOutcome, list[str]]:
    return {outcome: [] for outcome in TASK_OUTCOMES if outcome is not WebhookOutcome.REJECTED}


@dataclass
class WebhookReport:
    """What became of each task a body named, by outcome (`TASK_OUTCOMES`); a rejected task
    comes with why its result was not written."""

    jobs: dict[WebhookOutcome, list[str]] = field(default_factory=_no_jobs_yet)
    rejected: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[WebhookOutcome, int]:
        return {outcome: len(self._named(outcome)) for outcome in TASK_OUTCOMES}

    def as_json(self) -> dict[str, object]:
        return {outcome.value: self._named(outcome) for outcome in TASK_OUTCOMES}

    def _named(self, outcome: WebhookOutcome) -> list[str] | dict[str, str]:
        return self.rejected if outcome is WebhookOutcome.REJECTED else self.jobs[outcome]


class WebhookIngestor:
    def __init__(
        self, store: Store, runware: RunwareApi, policy: CheckPolicy, *, confirm: bool
    ) -> None:
        self._store = store
        self._runware = runware
        self._url_policy = policy.url_policy
        self._first_check_delay_seconds = policy.first_check_delay_seconds
        self._confirm = confirm

    async def ingest(self, claimed: Mapping[str, TaskStatus]) -> WebhookReport:
        """Store every result the body carries. Raises StoreUnavailable or
        ConfirmationUnavailable when nothing durable can be promised yet."""
        report = WebhookReport()
        trackable = {job_id: s for job_id, s in claimed.items() if is_trackable(job_id)}
        for job_id in claimed.keys() - trackable.keys():
            # Named by its first characters in the answer: the id may be 256 KiB long.
            report.rejected[job_id[:64]] = untrackable_reason(job_id)
            # Logged as a refused URL is (escaped by the log formatters), at most 255 characters.
            shown = job_id[:255]
            with log_context(job_id=shown):
                log.warning("webhook for job %s not written: %s", shown, untrackable_reason(job_id))
        if not trackable:
            return report
        statuses = await self._confirmed(trackable) if self._confirm else trackable
        for job_id, status in statuses.items():
            with log_context(job_id=job_id):
                await self._ingest_one(job_id, status, report)
        return report

    async def _confirmed(self, claimed: Mapping[str, TaskStatus]) -> dict[str, TaskStatus]:
        try:
            answers = await self._runware.get_statuses(list(claimed))
        except RunwareCredentialsRejected as error:
            log.error("webhook confirmation: Runware rejected the API key: %s", error)
            raise ConfirmationUnavailable(str(error)) from error
        unconfirmed = [j for j, s in answers.items() if isinstance(s, CheckError)]
        if unconfirmed:
            raise ConfirmationUnavailable(f"Runware did not answer for {len(unconfirmed)} task(s)")
        return answers

    async def _ingest_one(self, job_id: str, status: TaskStatus, report: WebhookReport) -> None:
        match status:
            case Succeeded(video_url=url):
                reason = self._url_policy.rejects(url)
                if reason is not None:
                    log.warning("webhook for job %s not written: %s", job_id, reason)
                    await self._store.note_job_error(job_id, f"webhook: {reason}")
                    report.rejected[job_id] = reason
                    return
                outcome = await self._store.ingest_result(
                    job_id, url, None, self._first_check_delay_seconds
                )
            case Failed():
                outcome = await self._store.ingest_result(
                    job_id, FAILED, status.reason, self._first_check_delay_seconds
                )
            case UnknownTask() | Processing() | CheckError():
                # Not a result: progress, or something only polling can settle (with its grace
                # period for unknown tasks).
                report.jobs[WebhookOutcome.IGNORED].append(job_id)
                return
        report.jobs[outcome.kind].append(job_id)
