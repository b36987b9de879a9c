"""Serve an ASGI app with uvicorn inside the running event loop, on a loopback port.

Used wherever a real HTTP server is needed in-process: the demo, the simulator, the tests'
stand-ins and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_SECONDS = 15.0


class _EmbeddedServer(uvicorn.Server):
    """A server sharing the event loop with others: signals stay with the host program.

    A plain uvicorn.Server swaps SIGINT/SIGTERM handlers while serving; several of them
    stopping in another order than they started would leave a stale handler installed.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind_tcp_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket for uvicorn's `serve(sockets=…)`.

    proto=IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say
    they are TCP, and accepted sockets inherit proto 0 otherwise. With Nagle on, every
    keep-alive response waited ~40 ms for the client's delayed ACK.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    # Listen at once, so a client told the URL can connect before uvicorn has started.
    sock.listen(128)
    return sock


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
) -> AsyncIterator[str]:
    """Yield the base URL (`http://127.0.0.1:PORT`) while the app is being served."""
    sock = bind_tcp_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level=log_level, lifespan="auto", access_log=False, log_config=None
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_SECONDS
        while not server.started:
            if task.done():
                task.result()  # re-raises the start-up error
                raise RuntimeError("uvicorn stopped during start-up")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("uvicorn did not start in time")
            await asyncio.sleep(0.005)
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
