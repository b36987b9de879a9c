"""The Runware HTTP client: batched `getResponse`, every known error shape, polite retries.

Implements `reconciler.ports.RunwareApi`. Facts it relies on: docs/runware-api.md; in short:
one `POST /v1` endpoint taking an array of tasks, answers `{"data":[…]}` and/or `{"errors":[…]}`
(or a singular `error`) whatever the HTTP status, 429/503/504 and other 5xx are transient, and
no source confirms that several `getResponse` tasks per request are answered — so answers are
matched by `taskUUID` and any task an answer leaves out is asked again on its own.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any

import httpx

from reconciler.backoff import Backoff
from reconciler.clips import (
    UNKNOWN_TASK_CODES,
    CheckError,
    TaskStatus,
    status_from_error,
)
from reconciler.config import DEFAULTS
from reconciler.ports import RunwareCredentialsRejected
from reconciler.ratelimit import TokenBucket
from reconciler.runware.payloads import Envelope, describe_errors, statuses_named

_CREDENTIAL_STATUSES = frozenset({401, 402, 403})
_USER_AGENT = "clip-reconciler"


class RunwareRequestFailed(Exception):
    """A request Runware did not accept (submit_video only; get_statuses never raises this)."""


# --- HTTP outcomes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    status_code: int
    envelope: Envelope | None


@dataclass(frozen=True)
class _GaveUp:
    message: str


def _retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Retry-After as seconds, from delta-seconds or an HTTP-date; None if absent or unreadable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _parse_body(response: httpx.Response) -> Envelope | None:
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return Envelope.parse(body)


def _refusal(envelope: Envelope, status_code: int) -> str:
    detail = describe_errors(envelope.unattributed_errors())
    return f"Runware refused the request (HTTP {status_code}" + (f", {detail})" if detail else ")")


def _omitted_single(envelope: Envelope, status_code: int) -> TaskStatus:
    """The status of the one task asked about, when the answer does not name it."""
    # Asked about exactly one task, an error naming no task that says "unknown task" can only
    # be about that task. Other unattributed errors are not trusted to fail a clip.
    for error in envelope.unattributed_errors():
        if error.error_code in UNKNOWN_TASK_CODES:
            return status_from_error(error.error_code, error.error_message)
    if status_code >= 300:
        return CheckError(_refusal(envelope, status_code))
    detail = describe_errors(envelope.unattributed_errors())
    return CheckError(
        "Runware's answer did not mention the task" + (f": {detail}" if detail else "")
    )


# How many task ids a refused batch is split to isolate: finding one among n costs two
# requests per halving, 2 * ceil(log2 n) in all (12 for a batch of 50).
REFUSED_BATCH_BAD_IDS_ISOLATED = 2


@dataclass
class _SplitBudget:
    """Requests left for bisecting one refused batch: enough to isolate
    `REFUSED_BATCH_BAD_IDS_ISOLATED` bad ids, so a refusal of every request (not of one task)
    costs a bounded number of extra requests, never one per task."""

    requests_left: int

    @classmethod
    def for_batch(cls, size: int) -> _SplitBudget:
        halvings = math.ceil(math.log2(size)) if size > 1 else 0
        return cls(2 * halvings * REFUSED_BATCH_BAD_IDS_ISOLATED)

    def take(self, requests: int) -> bool:
        if self.requests_left < requests:
            return False
        self.requests_left -= requests
        return True


def _is_transient(status_code: int) -> bool:
    return status_code in (408, 429) or status_code >= 500


class RunwareClient:
    """Runware over HTTP. Safe to share: one connection pool, one in-flight bound."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        batch_size: int = DEFAULTS.batch_size,
        max_in_flight: int = DEFAULTS.runware_concurrency,
        max_retries: int = DEFAULTS.runware_max_retries,
        backoff_base_seconds: float = 1.0,
        backoff_cap_seconds: float = 30.0,
        max_retry_after_seconds: float = 120.0,
        timeout_seconds: float = DEFAULTS.runware_timeout_seconds,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        # Told each request's HTTP status, or None when no answer came (network error).
        on_request: Callable[[int | None], None] | None = None,
        rng: random.Random | None = None,
        rate_limit: TokenBucket | None = None,
    ) -> None:
        if batch_size < 1 or max_in_flight < 1 or max_retries < 0:
            raise ValueError("batch_size and max_in_flight must be >= 1, max_retries >= 0")
        self._api_url = api_url
        self._api_key = api_key
        self._batch_size = batch_size
        self._max_retries = max_retries
        # Full jitter on purpose (see reconciler.backoff.Jitter): few retries to a shared server.
        self._backoff = Backoff(backoff_base_seconds, backoff_cap_seconds, jitter="full")
        self._max_retry_after = max_retry_after_seconds
        self._sleep = sleep
        self._on_request = on_request
        self._rng = rng or random.Random()
        self._rate_limit = rate_limit
        # One bound for the whole client, shared by concurrent get_statuses calls: Runware
        # advises a low steady concurrency (2 to 4 requests in flight).
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout_seconds),
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": _USER_AGENT},
        )

    async def __aenter__(self) -> RunwareClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- Polling ------------------------------------------------------------------------------

    async def get_statuses(self, task_uuids: Sequence[str]) -> dict[str, TaskStatus]:
        unique = list(dict.fromkeys(task_uuids))
        batches = [
            unique[i : i + self._batch_size] for i in range(0, len(unique), self._batch_size)
        ]
        results: dict[str, TaskStatus] = {}
        try:
            # A TaskGroup so that rejected credentials stop the other batches at once.
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._check_batch(batch)) for batch in batches]
        except* RunwareCredentialsRejected as rejected:
            raise rejected.exceptions[0] from None
        for task in tasks:
            results.update(task.result())
        return results

    async def _check_batch(
        self, batch: list[str], splits: _SplitBudget | None = None
    ) -> dict[str, TaskStatus]:
        if splits is None:
            splits = _SplitBudget.for_batch(len(batch))
        outcome = await self._post([{"taskType": "getResponse", "taskUUID": u} for u in batch])
        if isinstance(outcome, _GaveUp):
            return {u: CheckError(outcome.message) for u in batch}
        envelope = outcome.envelope
        if envelope is None:
            message = f"Runware answered HTTP {outcome.status_code} with a body that is not JSON"
            if outcome.status_code >= 300:  # refused as a whole, maybe for one task's sake
                return await self._split_refused(batch, CheckError(message), splits)
            return {u: CheckError(message) for u in batch}
        statuses = statuses_named(envelope, batch)
        omitted = [u for u in batch if u not in statuses]
        if not omitted:
            return statuses
        if len(batch) == 1:
            return {batch[0]: _omitted_single(envelope, outcome.status_code)}
        if outcome.status_code >= 300:
            if not statuses:
                # A client error naming no task refuses the request as a whole: perhaps
                # because of one task in it (a malformed id), so the halves are asked apart.
                refusal = CheckError(_refusal(envelope, outcome.status_code))
                return await self._split_refused(batch, refusal, splits)
            # A client error naming some tasks (e.g. "invalid taskUUID"): the others were
            # not looked at. Ask them again together, without the tasks it named.
            if splits.take(1):
                statuses.update(await self._check_batch(omitted, splits))
            else:
                refusal = CheckError(_refusal(envelope, outcome.status_code))
                statuses.update(dict.fromkeys(omitted, refusal))
            return statuses
        singles = await asyncio.gather(*(self._check_batch([u]) for u in omitted))
        for single in singles:
            statuses.update(single)
        return statuses

    async def _split_refused(
        self, batch: list[str], refusal: CheckError, splits: _SplitBudget
    ) -> dict[str, TaskStatus]:
        """Bisect a batch Runware refused as a whole, so that one bad task id costs only
        itself: each half is asked again, down to single tasks, within the batch's budget.
        Halves go one after the other, so the budget is spent in a predictable order."""
        if len(batch) == 1 or not splits.take(2):
            # A single task refused, or the budget spent (a refusal of every request, not of
            # one task): the refusal is a CheckError, and the next round asks again.
            return dict.fromkeys(batch, refusal)
        middle = len(batch) // 2
        statuses = await self._check_batch(batch[:middle], splits)
        statuses.update(await self._check_batch(batch[middle:], splits))
        return statuses

    # --- Submitting (demo, tests) -------------------------------------------------------------

    async def submit_video(
        self,
        task_uuid: str,
        *,
        webhook_url: str | None,
        model: str = "klingai:5@3",
        prompt: str = "A lighthouse on a cliff at dawn, waves below",
        number_results: int = 1,
    ) -> None:
        """Submit an async `videoInference` job; a `conflictTaskUUID` means it already was."""
        task: dict[str, Any] = {
            "taskType": "videoInference",
            "taskUUID": task_uuid,
            "model": model,
            "positivePrompt": prompt,
            "deliveryMethod": "async",
            "includeCost": True,
            "outputType": "URL",
            "outputFormat": "MP4",
            "numberResults": number_results,
        }
        if webhook_url is not None:
            task["webhookURL"] = webhook_url
        outcome = await self._post([task])
        if isinstance(outcome, _GaveUp):
            raise RunwareRequestFailed(outcome.message)
        envelope = outcome.envelope
        if envelope is None:
            raise RunwareRequestFailed(
                f"Runware answered HTTP {outcome.status_code} with a body that is not JSON"
            )
        if any(e.error_code == "conflictTaskUUID" for e in envelope.errors):
            return
        if outcome.status_code < 300 and any(i.taskUUID == task_uuid for i in envelope.data):
            return
        detail = describe_errors(envelope.errors) or "no acknowledgement for the task"
        raise RunwareRequestFailed(
            f"Runware did not accept video task {task_uuid} (HTTP {outcome.status_code}: {detail})"
        )

    # --- One request, with retries ----------------------------------------------------------

    async def _post(self, tasks: list[dict[str, Any]]) -> _Answer | _GaveUp:
        """POST tasks; retry transient failures; raise on rejected credentials."""
        problem = "no attempt made"
        for attempt in range(self._max_retries + 1):
            retry_after: float | None = None
            try:
                async with self._in_flight:
                    if self._rate_limit is not None:
                        await self._rate_limit.acquire()
                    response = await self._http.post(self._api_url, json=tasks)
            except httpx.TransportError as exc:  # connect/read errors and timeouts
                problem = f"network error ({type(exc).__name__})"
                if self._on_request is not None:
                    self._on_request(None)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                return _GaveUp(f"Runware request failed ({type(exc).__name__})")
            else:
                if self._on_request is not None:
                    self._on_request(response.status_code)
                envelope = _parse_body(response)
                if response.status_code in _CREDENTIAL_STATUSES:
                    raise RunwareCredentialsRejected(self._credentials_message(response, envelope))
                if not _is_transient(response.status_code):
                    return _Answer(response.status_code, envelope)
                problem = f"HTTP {response.status_code}"
                detail = describe_errors(envelope.errors if envelope else [])
                if detail:
                    problem += f", {detail}"
                retry_after = _retry_after_seconds(
                    response.headers.get("retry-after"), datetime.now(UTC)
                )
                if retry_after is not None and retry_after > self._max_retry_after:
                    return _GaveUp(
                        f"Runware unavailable ({problem}); it asked to retry after "
                        f"{retry_after:.0f}s, longer than the {self._max_retry_after:.0f}s allowed"
                    )
            if attempt < self._max_retries:
                # Sleep outside the semaphore: waiting is not a request in flight.
                await self._sleep(self._retry_delay(attempt, retry_after))
        attempts = self._max_retries + 1
        return _GaveUp(f"Runware unavailable after {attempts} attempts ({problem})")

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        # The server's Retry-After knows its load better than our schedule does.
        if retry_after is not None:
            return retry_after
        return self._backoff.delay(attempt, self._rng)

    def _credentials_message(self, response: httpx.Response, envelope: Envelope | None) -> str:
        meaning = {
            401: "the API key is invalid",
            402: "the account has no credit left",
            403: "the API key is not allowed to do this",
        }[response.status_code]
        message = f"Runware rejected the credentials (HTTP {response.status_code}: {meaning})"
        detail = describe_errors(envelope.errors) if envelope else ""
        if detail:
            message += f": {detail}"
        # Runware's own message could echo the key back; it must never reach a log.
        return message.replace(self._api_key, "***") if self._api_key else message
