"""`WebhookRecorder`: a tiny webhook receiver that records what the simulator delivers.

For tests, the demo and benchmarks that need to see webhooks without the real service. It can
answer the first N deliveries with an error status to exercise the simulator's retries.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.local.serving import serve

WEBHOOK_PATH = "/webhooks/runware"


@dataclass(frozen=True)
class Delivery:
    """One POST as received: the parsed body (None if not JSON) and the status answered."""

    body: Any
    status: int
    query: str


class WebhookRecorder:
    def __init__(self, *, fail_first: int = 0, fail_status: int = 500) -> None:
        self.fail_remaining = fail_first
        self.fail_status = fail_status
        self.deliveries: list[Delivery] = []
        self._stack: contextlib.AsyncExitStack | None = None
        self._base_url: str | None = None
        self.app = Starlette(routes=[Route(WEBHOOK_PATH, self._receive, methods=["POST"])])

    @property
    def url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the recorder is not running; use `async with`")
        return self._base_url + WEBHOOK_PATH

    @property
    def received(self) -> list[Any]:
        """Bodies that were acknowledged with 2xx, in arrival order."""
        return [d.body for d in self.deliveries if 200 <= d.status < 300]

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        status = 200
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            status = self.fail_status
        self.deliveries.append(Delivery(body, status, request.url.query))
        return JSONResponse({"ok": status == 200}, status_code=status)

    async def __aenter__(self) -> WebhookRecorder:
        stack = contextlib.AsyncExitStack()
        self._base_url = await stack.enter_async_context(serve(self.app))
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._base_url = None
