"""`POST /check-clips-status`: the seed's contract, kept byte-compatible."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from reconciler.auth import Unauthenticated
from reconciler.callers import UserCaller
from reconciler.checker import ProjectNotFound
from reconciler.clips import error_response
from reconciler.http.auth_failures import FailedAuthentications
from reconciler.http.requests import BodyTooLarge, bearer_token, read_capped_body
from reconciler.ports import StoreRejected, StoreUnavailable
from reconciler.services import Services

log = logging.getLogger(__name__)

MAX_CHECK_BODY_BYTES = 64 * 1024
# An answer naming more clips than this is rendered in a worker thread: a full-access check of
# a project with a 20 MB clips column takes a second to render, and the event loop (webhooks,
# /healthz) must not wait for it. Users' answers are bounded anyway (CheckLimits).
RENDER_OFF_LOOP_CLIPS = 2_000


class CheckRequest(BaseModel):
    """The edge function's request body; other fields are ignored, as the seed did."""

    model_config = ConfigDict(extra="ignore")
    project_id: UUID


def failure(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_response(message), status_code=status, headers=headers)


async def _read_check_request(request: Request) -> CheckRequest | JSONResponse:
    try:
        body = await read_capped_body(request, MAX_CHECK_BODY_BYTES)
    except BodyTooLarge:
        return failure(413, "Request body too large")
    try:
        payload = json.loads(body)
    except ValueError:
        return failure(400, 'Request body must be JSON: {"project_id": "<uuid>"}')
    except RecursionError:
        # Deeper than the JSON decoder's recursion limit (about 1000 levels): no request needs it.
        return failure(400, "Request body is nested too deeply")
    if not isinstance(payload, dict) or payload.get("project_id") in (None, ""):
        return failure(400, "project_id is required")
    try:
        return CheckRequest.model_validate(payload)
    except ValidationError:
        return failure(400, "project_id must be a UUID")


async def check_clips_status(request: Request) -> Response:
    services: Services = request.app.state.services
    failures: FailedAuthentications = request.app.state.auth_failures
    too_many = failures.too_many(request, "check")
    if too_many is not None:
        return failure(
            429,
            "Too many failed authentications, try again later",
            {"Retry-After": too_many.headers["Retry-After"]},
        )
    try:
        caller = await services.callers.verify(bearer_token(request))
    except Unauthenticated as error:
        log.info("check refused: %s", error)
        if error.guess:
            failures.failed(request, "check")
        return failure(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
    # Full-access callers are backends: limited only when RECONCILER_SERVICE_CHECK_RATE_* says.
    limiter = (
        services.check_rate_limit
        if isinstance(caller, UserCaller)
        else services.service_check_rate_limit
    )
    wait = limiter.try_acquire(caller.key) if limiter is not None else None
    if wait is not None:
        return failure(429, "Too many checks, slow down", {"Retry-After": str(math.ceil(wait))})
    parsed = await _read_check_request(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    try:
        body = await services.checker.check_for(caller, parsed.project_id)
    except ProjectNotFound:
        # Also a project this user may not see: existence must not leak.
        return failure(404, "Project not found")
    except StoreUnavailable as error:
        log.warning("check %s: database unavailable: %s", parsed.project_id, error)
        return failure(503, "Database unavailable, try again", {"Retry-After": "1"})
    except StoreRejected as error:
        log.error("check %s: database rejected the write: %s", parsed.project_id, error)
        return failure(500, "Internal error")
    return await _answer(body)


async def _answer(body: dict[str, Any]) -> JSONResponse:
    """The 200 answer, rendered as JSONResponse always renders it (the contract's bytes),
    off the event loop when it is large."""
    if len(body.get("clips", ())) + len(body.get("details", ())) <= RENDER_OFF_LOOP_CLIPS:
        return JSONResponse(body)
    return await asyncio.to_thread(JSONResponse, body)
