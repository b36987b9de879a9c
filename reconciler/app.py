"""HTTP surface: the seed-compatible check endpoint, health and readiness."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.checker import ProjectNotFound
from reconciler.clips import error_response
from reconciler.config import Settings
from reconciler.ports import StoreRejected, StoreUnavailable
from reconciler.services import Services, open_services

log = logging.getLogger(__name__)

MAX_CHECK_BODY_BYTES = 64 * 1024


class CheckRequest(BaseModel):
    """The edge function's request body; other fields are ignored, as the seed did."""

    model_config = ConfigDict(extra="ignore")
    project_id: UUID


def _failure(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_response(message), status_code=status, headers=headers)


def _bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _is_trusted_caller(request: Request, tokens: tuple[str, ...]) -> bool:
    presented = _bearer_token(request)
    if presented is None:
        return False
    # Compare against every token (no early exit) in constant time.
    matches = [hmac.compare_digest(presented.encode(), t.encode()) for t in tokens]
    return any(matches)


async def _read_check_request(request: Request) -> CheckRequest | JSONResponse:
    body = await request.body()
    if len(body) > MAX_CHECK_BODY_BYTES:
        return _failure(413, "Request body too large")
    try:
        payload = json.loads(body)
    except ValueError:
        return _failure(400, 'Request body must be JSON: {"project_id": "<uuid>"}')
    if not isinstance(payload, dict) or payload.get("project_id") in (None, ""):
        return _failure(400, "project_id is required")
    try:
        return CheckRequest.model_validate(payload)
    except ValidationError:
        return _failure(400, "project_id must be a UUID")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def check_clips_status(request: Request) -> Response:
    services = _services(request)
    if not _is_trusted_caller(request, services.settings.caller_tokens):
        return _failure(401, "Unauthorized", {"WWW-Authenticate": "Bearer"})
    parsed = await _read_check_request(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    try:
        body = await services.checker.check(parsed.project_id)
    except ProjectNotFound:
        return _failure(404, "Project not found")
    except StoreUnavailable as error:
        log.warning("check %s: database unavailable: %s", parsed.project_id, error)
        return _failure(503, "Database unavailable, try again", {"Retry-After": "1"})
    except StoreRejected as error:
        log.error("check %s: database rejected the write: %s", parsed.project_id, error)
        return _failure(500, "Internal error")
    return JSONResponse(body)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    try:
        await _services(request).store.ping()
    except StoreUnavailable as error:
        return JSONResponse({"status": "unavailable", "database": str(error)}, status_code=503)
    return JSONResponse({"status": "ready", "database": "ok"})


def create_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            yield

    return Starlette(
        routes=[
            Route("/check-clips-status", check_clips_status, methods=["POST"]),
            Route("/functions/v1/check-clips-status", check_clips_status, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
