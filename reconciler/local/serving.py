"""Serve an ASGI app with uvicorn inside the running event loop, on a loopback port.

Used wherever a real HTTP server is needed in-process: the demo, the simulator, the tests'
stand-ins and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import uvicorn
from starlette.types import ASGIApp

_START_TIMEOUT_SECONDS = 15.0
# How often a hurried shutdown looks for requests that started after it began.
_HURRY_POLL_SECONDS = 0.05


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
    app: ASGIApp,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_level: str = "warning",
    options: Mapping[str, Any] | None = None,
) -> AsyncIterator[str]:
    """Yield the base URL (`http://127.0.0.1:PORT`) while the app is being served. `options`:
    more uvicorn.Config keywords (`serve`'s own: reconciler/http/slow_clients.py).

    On exit the server has stopped: after the requests in flight on a normal exit; at once
    (those requests cancelled) when the block failed or the caller is cancelled, even in the
    middle of the shutdown. The caller's cancellation always propagates."""
    sock = bind_tcp_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="auto",
        access_log=False,
        log_config=None,
        **(options or {}),
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    hurry = False
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
    except BaseException:
        # A failed or cancelled caller is leaving: a request that never ends (a held one, a
        # long poll) must not keep it waiting.
        hurry = True
        raise
    finally:
        try:
            await _shut_down(server, task, hurry=hurry)
        finally:
            sock.close()


async def _shut_down(server: uvicorn.Server, task: asyncio.Task[None], *, hurry: bool) -> None:
    """Stop the server and return once its task has ended.

    `hurry` (or the caller being cancelled meanwhile) cancels the requests in flight, as
    uvicorn itself does after its graceful-shutdown timeout: each is answered 500 and its
    connection closed, and the app's lifespan shutdown still runs. Cancelled again, the server
    task itself is cancelled. The caller's cancellation is re-raised once the task has ended;
    the task's own cancellation (by someone else) is not an error here."""
    server.should_exit = True
    interrupted: asyncio.CancelledError | None = None
    cancelled_requests: set[asyncio.Task[None]] = set()
    while not task.done():
        if hurry:
            # Once each: a request task cancelled twice could be stopped while it answers,
            # leaving a connection open that the shutdown would then wait for forever.
            requests = server.server_state.tasks - cancelled_requests
            for request in requests:
                request.cancel()
            cancelled_requests |= requests
        try:
            # asyncio.wait, not `await task`: our cancellation must not cancel the server
            # task. While hurrying, look again shortly: a request may start before uvicorn
            # has closed its listener.
            await asyncio.wait([task], timeout=_HURRY_POLL_SECONDS if hurry else None)
        except asyncio.CancelledError as error:
            if interrupted is not None:
                task.cancel()
            interrupted = error
            hurry = True
    if interrupted is not None:
        raise interrupted
    if not task.cancelled():
        task.result()  # the server's own failure
