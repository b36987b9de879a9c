"""Slow clients cannot hold the server's connections: a header deadline and a connection cap.

uvicorn closes a keep-alive connection that stays idle after an answer, but nothing bounds how
long a request line and its headers may take to arrive: a client sending a byte now and then
(or half a request, then nothing) held its connection for as long as it liked, and twenty of
them held twenty. Here each connection gets `RECONCILER_HEADER_TIMEOUT_SECONDS` from when it
opens — and again from each answer, for the next request on it — until its request's headers
are complete; past that it is closed. Once the headers are in, the request is the app's: a
long check is never cut short.

`RECONCILER_MAX_CONNECTIONS` caps open connections and requests in progress: uvicorn answers
a request beyond the cap 503 at once (its `limit_concurrency`). Slow request *bodies* and many
connections from one address are for a proxy in front to bound (README, "Behind a proxy").
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from reconciler.config import Settings

log = logging.getLogger(__name__)


def header_deadline_protocol(
    header_timeout_seconds: float, base: type[asyncio.Protocol] = AutoHTTPProtocol
) -> type[asyncio.Protocol]:
    """uvicorn's `http=` protocol class: `base` (httptools when installed, else h11), closing
    connections whose request headers take longer than `header_timeout_seconds`."""

    class HeaderDeadlineProtocol(base):  # type: ignore[misc,valid-type]
        # Both uvicorn protocols keep, in `cycle`, the request whose headers arrived last,
        # until the next one's arrive; its response being complete means the connection
        # waits for new headers.

        def connection_made(self, transport: asyncio.Transport) -> None:
            self._header_deadline: asyncio.TimerHandle | None = None
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._header_deadline is not None and not self._awaiting_headers():
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # A pipelined request may already have been started: then no deadline.
            if not self.transport.is_closing() and self._awaiting_headers():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _awaiting_headers(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = asyncio.get_running_loop().call_later(
                header_timeout_seconds, self._headers_too_slow
            )

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.transport.is_closing() or not self._awaiting_headers():
                return
            log.info(
                "closed a connection from %s: no complete request headers within %g s",
                self.client[0] if self.client else "unknown",
                header_timeout_seconds,
            )
            self.transport.close()

    return HeaderDeadlineProtocol


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.Config keywords bounding what slow or numerous clients can hold."""
    return {
        "http": header_deadline_protocol(settings.header_timeout_seconds),
        # No route speaks WebSocket; an upgrade would also hand the connection to a protocol
        # without the header deadline.
        "ws": "none",
        # uvicorn counts the connection asking among the open ones: one more lets exactly
        # `max_connections` be served.
        "limit_concurrency": settings.max_connections + 1,
    }
