"""A loopback TCP proxy that can cut the line: the database "goes down" for real, mid-run,
without stopping the test cluster."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.up = True
        self.port = 0
        # Connections closed at once because the line was cut: how often the client tried.
        self.refused = 0
        self._restore_timer: asyncio.TimerHandle | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Tracked like the pipes: a connection still being opened when the proxy stops is
        # cancelled too, instead of starting its pipes after the clean-up.
        self._track(asyncio.current_task())
        if not self.up:
            self.refused += 1
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        except asyncio.CancelledError:
            writer.close()
            raise
        if not self.up:  # cut while the upstream connection was being opened
            writer.close()
            upstream_writer.close()
            return
        self._writers |= {writer, upstream_writer}
        self._track(asyncio.create_task(self._pipe(reader, upstream_writer)))
        self._track(asyncio.create_task(self._pipe(upstream_reader, writer)))

    def _track(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def cut(self) -> None:
        """Close every open connection and refuse new ones until `restore()`."""
        self.up = False
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    def restore(self) -> None:
        if self._restore_timer is not None:
            self._restore_timer.cancel()
            self._restore_timer = None
        self.up = True

    def fail_over(self, refuse_seconds: float) -> None:
        """What a managed database's failover looks like to a client: every connection dropped
        at once, new ones refused for `refuse_seconds`, then accepted again (by the new
        primary, here the same server)."""
        self.cut()
        self._restore_timer = asyncio.get_running_loop().call_later(refuse_seconds, self.restore)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TcpProxy]:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self.cut()
            if self._restore_timer is not None:
                self._restore_timer.cancel()
            self._server.close()
            await self._server.wait_closed()
            # Until none is left: a connection being accepted may still start its pipes.
            while tasks := {task for task in self._tasks if not task.done()}:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
