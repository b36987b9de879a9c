"""The bench's load generator, when one connection fails, stops every other one with it: no
worker keeps a connection open (and a request going) after `run_load` has raised."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bench.loadgen import post_request, run_load
from tests.waiting import wait_until

CONCURRENCY = 4


class _Server:
    """Reads one request per connection; once every connection has sent one, answers the
    first with a chunked body (which the generator refuses) and never answers the others."""

    def __init__(self) -> None:
        self.requests = 0
        self.all_sent = asyncio.Event()
        self.closed_by_client = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            first = self.requests == 1
            if self.requests == CONCURRENCY:
                self.all_sent.set()
            await self.all_sent.wait()
            if first:
                writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                await writer.drain()
            await reader.read()  # the rest of the request, then the end: returns at EOF only
            self.closed_by_client += 1
        finally:
            writer.close()


async def test_one_failing_worker_stops_the_others() -> None:
    server = _Server()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    requests = [post_request("127.0.0.1", port, "/", b"{}")] * (CONCURRENCY * 2)
    try:
        # Raised alone or in a group (how it is wrapped is not the point here).
        with pytest.raises((RuntimeError, ExceptionGroup)) as raised:
            await run_load("127.0.0.1", port, requests, CONCURRENCY)

        assert "chunked answers are not supported" in repr(raised.value)
        # Every connection was closed by the generator: no worker is left waiting on one.
        await wait_until(lambda: server.closed_by_client == CONCURRENCY)
    finally:
        listener.close()
        with contextlib.suppress(Exception):
            await listener.wait_closed()
