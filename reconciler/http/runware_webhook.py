"""`POST /webhooks/runware?token=…`: authenticated, size-capped, durable before 2xx."""

from __future__ import annotations

import json
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.http.requests import BodyTooLarge, read_capped_body
from reconciler.ingest import ConfirmationUnavailable, WebhookReport
from reconciler.observability.observer import Observer
from reconciler.ports import StoreRejected, StoreUnavailable, WebhookOutcome
from reconciler.runware.payloads import TooManyTasks, parse_webhook_body
from reconciler.services import Services
from reconciler.tokens import matches_any

log = logging.getLogger(__name__)


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _count_outcomes(observer: Observer, report: WebhookReport) -> None:
    """One per task the body named, by what became of it."""
    for outcome, count in report.counts().items():
        observer.webhook(outcome, count)


async def runware_webhook(request: Request) -> Response:
    services: Services = request.app.state.services
    settings = services.settings
    # The token travels in the query string; it is never logged (see http/access_log.py).
    authenticated = matches_any(request.query_params.get("token"), settings.webhook_secrets)
    if not authenticated and (settings.webhook_secrets or not settings.insecure_webhooks):
        services.observer.webhook(WebhookOutcome.UNAUTHORIZED)
        return _error(401, "missing or invalid token")
    try:
        raw = await read_capped_body(request, settings.webhook_max_bytes)
    except BodyTooLarge:
        services.observer.webhook(WebhookOutcome.TOO_LARGE)
        return _error(413, f"body over {settings.webhook_max_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        services.observer.webhook(WebhookOutcome.INVALID)
        return _error(400, "body is not valid JSON")
    try:
        statuses = parse_webhook_body(body, settings.webhook_max_tasks)
    except TooManyTasks as error:
        services.observer.webhook(WebhookOutcome.TOO_LARGE)
        return _error(413, f"{error} (RECONCILER_WEBHOOK_MAX_TASKS); nothing was stored")
    if statuses is None:
        services.observer.webhook(WebhookOutcome.INVALID)
        return _error(400, "body names no taskUUID")
    try:
        report = await services.webhooks.ingest(statuses)
    except (StoreUnavailable, ConfirmationUnavailable) as error:
        log.warning("webhook not stored, asking Runware to retry: %s", error)
        services.observer.webhook(WebhookOutcome.UNAVAILABLE)
        return _error(503, "not stored yet, retry later")
    except StoreRejected as error:
        log.error("webhook rejected by the database: %s", error)
        services.observer.webhook(WebhookOutcome.INVALID)
        return _error(400, "result rejected")
    _count_outcomes(services.observer, report)
    if report.rejected:
        return _error(422, "video URL not allowed", **report.as_json())
    return JSONResponse(report.as_json())
