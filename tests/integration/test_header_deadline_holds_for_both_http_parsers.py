"""The header deadline works on both of uvicorn's HTTP implementations (httptools, which
`serve` uses when installed, and h11): a half-sent request is closed, on a fresh connection and
on a kept-alive one, and a complete request is answered. Real sockets on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from reconciler.http.slow_clients import header_deadline_protocol
from reconciler.local.serving import serve

HALF_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n"
FULL_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
DEADLINE_SECONDS = 0.5
# Only bounds a failure.
CLOSE_DEADLINE_SECONDS = 60.0


async def ok(_: Request) -> Response:
    return PlainTextResponse("ok")  # Content-Length: 2


@pytest.fixture(params=[HttpToolsProtocol, H11Protocol], ids=["httptools", "h11"])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    options = {"http": header_deadline_protocol(DEADLINE_SECONDS, request.param), "ws": "none"}
    async with serve(Starlette(routes=[Route("/", ok)]), options=options) as url:
        yield int(url.rsplit(":", 1)[1])


async def closed_by_the_server(reader: asyncio.StreamReader) -> bool:
    try:
        rest = await asyncio.wait_for(reader.read(), CLOSE_DEADLINE_SECONDS)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return rest == b""


async def test_half_sent_requests_are_closed_and_complete_ones_answered(port: int) -> None:
    slow = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
    kept_alive = await asyncio.open_connection("127.0.0.1", port)
    connections = [*slow, kept_alive]
    try:
        for _, writer in slow:
            writer.write(HALF_REQUEST)
        reader, writer = kept_alive
        writer.write(FULL_REQUEST)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        body = await asyncio.wait_for(reader.readexactly(2), 30)
        writer.write(HALF_REQUEST)  # its next request, half sent

        assert head.startswith(b"HTTP/1.1 200")
        assert body == b"ok"
        closed = await asyncio.gather(*(closed_by_the_server(r) for r, _ in connections))
        assert closed == [True] * len(connections)
    finally:
        for _, each in connections:
            each.close()
