"""Access log without query strings: the webhook token travels there and must never be logged.

uvicorn's own access log prints the full request line, so `serve` turns it off and this
middleware logs method, path, status and duration instead.

It also gives every request an id (the caller's `X-Request-ID` when it is a sane short token),
carried by every log line the request causes and echoed in the response's `X-Request-ID`.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reconciler.observability.context import log_context, request_id_from

log = logging.getLogger("reconciler.access")

_QUIET_PATHS = frozenset({"/webhooks/runware", "/healthz", "/readyz", "/metrics"})


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = request_id_from(Headers(scope=scope).get("x-request-id"))

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        with log_context(request_id=request_id):
            try:
                await self.app(scope, receive, record_status)
            finally:
                # Routine high-volume traffic (accepted webhooks, probes, scrapes) logs at debug:
                # the metrics count it, and at info it cost ~7% of webhook throughput.
                level = (
                    logging.DEBUG
                    if status < 400 and scope["path"] in _QUIET_PATHS
                    else logging.INFO
                )
                # The path is decoded and the caller's: `%0A` in it is a real line feed. The
                # formatters escape it (observability/logs.py), as everything a caller controls.
                log.log(
                    level,
                    "%s %s %d %.1fms",
                    scope["method"],
                    scope["path"],
                    status,
                    (time.perf_counter() - started) * 1000,
                )
