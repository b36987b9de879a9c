"""`serve()` never swallows its caller's cancellation and never leaves its server behind.

A task cancelled inside `async with serve(app)` ends cancelled with the port closed, even with
a request held in the app (the server does not wait for it); a task cancelled while `serve()`
is shutting down gracefully ends cancelled too, instead of going on as if nothing happened."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from reconciler.local.serving import serve
from tests.waiting import wait_until


@dataclass
class HeldApp:
    """An app whose one route holds every request until `release` is set."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: int = 0

    async def _held(self, _: Request) -> Response:
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return PlainTextResponse("released")

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/held", self._held)])


def _refuses_connections(url: str) -> bool:
    port = urlsplit(url).port
    assert port is not None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
    return False


async def _get(url: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(url, timeout=None)).status_code


async def _finish(*tasks: asyncio.Task[int] | asyncio.Task[None]) -> None:
    """Cancel and await what a failed test left running (its results do not matter)."""
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" report from a failed test


async def test_cancelled_inside_serve_ends_cancelled_with_the_port_closed() -> None:
    held = HeldApp()
    urls: list[str] = []
    after_serve: list[str] = []

    async def owner() -> None:
        async with serve(held.app()) as url:
            urls.append(url)
            await asyncio.Event().wait()  # until cancelled
        after_serve.append("reached")

    serving = asyncio.create_task(owner())
    await wait_until(lambda: bool(urls))
    request = asyncio.create_task(_get(f"{urls[0]}/held"))
    try:
        await held.entered.wait()

        serving.cancel()
        # Bounds only a failure: the held request must not hold the cancelled owner.
        await wait_until(serving.done)

        assert serving.cancelled()
        assert after_serve == []
        assert _refuses_connections(urls[0])
        assert held.cancelled == 1  # the request in flight was not left running
    finally:
        held.release.set()
        await _finish(serving, request)


async def test_cancelled_during_the_graceful_shutdown_ends_cancelled() -> None:
    held = HeldApp()
    urls: list[str] = []
    after_serve: list[str] = []

    async def owner() -> None:
        async with serve(held.app()) as url:
            urls.append(url)
            await held.entered.wait()
        # Leaving the block normally: serve() now waits for the request in flight.
        after_serve.append("reached")

    serving = asyncio.create_task(owner())
    await wait_until(lambda: bool(urls))
    request = asyncio.create_task(_get(f"{urls[0]}/held"))
    try:
        # The listener is closed once the shutdown has begun; the held request keeps it going.
        await wait_until(lambda: _refuses_connections(urls[0]))
        assert not serving.done()

        serving.cancel()
        await wait_until(serving.done)

        assert serving.cancelled()
        assert after_serve == []
        assert held.cancelled == 1
    finally:
        held.release.set()
        await _finish(serving, request)


async def test_a_normal_exit_still_waits_for_the_request_in_flight() -> None:
    held = HeldApp()

    async def release_once_shutting_down(url: str) -> None:
        await wait_until(lambda: _refuses_connections(url))
        held.release.set()

    async with serve(held.app()) as url:
        request = asyncio.create_task(_get(f"{url}/held"))
        await held.entered.wait()
        releaser = asyncio.create_task(release_once_shutting_down(url))

    assert await request == 200
    assert held.cancelled == 0
    await releaser
