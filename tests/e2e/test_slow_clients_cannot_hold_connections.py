"""Clients that send half a request and then nothing are closed once
RECONCILER_HEADER_TIMEOUT_SECONDS has passed, on a fresh connection and on a kept-alive one,
while complete requests are answered meanwhile; beyond RECONCILER_MAX_CONNECTIONS a request
is answered 503 at once. Real sockets against `reconciler serve` in its own process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from tests.processes import ServiceProcess
from tests.waiting import wait_until

# Request line and one header, but never the blank line that ends the headers.
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: reconciler\r\n"
FULL_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: reconciler\r\n\r\n"
SLOW_CLIENTS = 20
# Only bounds a failure: a closed connection is seen as soon as the server closes it.
CLOSE_DEADLINE_SECONDS = 60.0

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def half_requests(port: int, count: int) -> AsyncIterator[list[Connection]]:
    connections: list[Connection] = []
    try:
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            connections.append((reader, writer))
            writer.write(HALF_REQUEST)
            await writer.drain()
        yield connections
    finally:
        for _, writer in connections:
            writer.close()


async def closed_by_the_server(reader: asyncio.StreamReader) -> bool:
    """Read until the server closes the connection (it sends nothing first)."""
    try:
        rest = await asyncio.wait_for(reader.read(), CLOSE_DEADLINE_SECONDS)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return rest == b""


async def test_half_sent_requests_are_closed_and_others_answered_meanwhile(
    service_env: dict[str, str],
) -> None:
    env = service_env | {"RECONCILER_HEADER_TIMEOUT_SECONDS": "1"}
    async with ServiceProcess(env, capture_output=True) as service:
        async with (
            half_requests(service.port, SLOW_CLIENTS) as slow,
            httpx.AsyncClient(base_url=service.url, timeout=30) as client,
        ):
            answered = await client.get("/healthz")
            closed = await asyncio.gather(*(closed_by_the_server(reader) for reader, _ in slow))

        assert answered.status_code == 200
        assert closed == [True] * SLOW_CLIENTS
        output = await service.stop_and_read()
    assert "no complete request headers within 1 s" in output


async def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(
    service_env: dict[str, str],
) -> None:
    env = service_env | {"RECONCILER_HEADER_TIMEOUT_SECONDS": "1"}
    async with ServiceProcess(env) as service:
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        try:
            writer.write(FULL_REQUEST)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await asyncio.wait_for(reader.readexactly(length), 30)
            writer.write(HALF_REQUEST)  # the next request, half sent: the keep-alive is over

            assert head.startswith(b"HTTP/1.1 200")
            assert await closed_by_the_server(reader)
        finally:
            writer.close()


async def test_a_request_beyond_the_connection_cap_gets_503(
    service_env: dict[str, str],
) -> None:
    cap = 5
    env = service_env | {
        "RECONCILER_MAX_CONNECTIONS": str(cap),
        "RECONCILER_HEADER_TIMEOUT_SECONDS": "3600",  # the slow clients stay for this test
    }
    # One connection, kept alive and reused: the client's own share of the cap.
    limits = httpx.Limits(max_connections=1)
    async with (
        ServiceProcess(env) as service,
        httpx.AsyncClient(base_url=service.url, timeout=30, limits=limits) as client,
    ):

        async def answered_with(status: int) -> bool:
            return (await client.get("/healthz")).status_code == status

        async with half_requests(service.port, cap - 1):
            # Served: cap - 1 slow connections and this one. (Waited for: the start-up probe's
            # own connection may take a moment to be closed.)
            await wait_until(lambda: answered_with(200))
            async with half_requests(service.port, 1):
                # The server accepts a connection a moment after the client sees it open.
                await wait_until(lambda: answered_with(503))
        # The slow clients gone, the cap has room again.
        await wait_until(lambda: answered_with(200))
