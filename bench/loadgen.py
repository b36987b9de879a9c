"""A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next
request as soon as the previous answer is read.

Raw asyncio streams and pre-built request bytes instead of httpx: httpx spends far more CPU
per request than a single uvicorn worker does, and on a 2-core machine the load generator must
not be what bounds the figures. W2 proves it is not: the same generator drives the bare
endpoint several times faster than the service.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

# A connection that broke or answered something unreadable; counted, then reopened.
_BROKEN = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass
class LoadResult:
    requests: int = 0
    wall_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0

    @property
    def throughput(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds > 0 else 0.0


async def run_workers(worker: Callable[[], Coroutine[Any, Any, None]], count: int) -> None:
    """Run `count` copies of `worker` at once until all are done.

    A TaskGroup, not `gather`: when one fails the others are cancelled (each closes its
    connection) before the failure is raised, in an ExceptionGroup, instead of running on,
    unowned, behind it. Likewise when the caller is cancelled."""
    async with asyncio.TaskGroup() as group:
        for _ in range(count):
            group.create_task(worker())


def post_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"host: {host}:{port}\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """Send one request, read the whole answer; the status code."""
        if self._writer is None or self._reader is None:
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                raise RuntimeError("chunked answers are not supported by this load generator")
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        if length:
            await self._reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def run_load(host: str, port: int, requests: Sequence[bytes], concurrency: int) -> LoadResult:
    """Send every request once over `concurrency` connections; latencies in seconds."""
    result = LoadResult()
    queue: Iterator[bytes] = iter(requests)

    async def worker() -> None:
        connection = _Connection(host, port)
        try:
            for request in queue:  # shared iterator: each request goes out once
                started = time.perf_counter()
                try:
                    status = await connection.exchange(request)
                except _BROKEN:
                    result.connection_errors += 1
                    connection.close()
                    continue
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] += 1
                result.requests += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await run_workers(worker, concurrency)
    result.wall_seconds = time.perf_counter() - started
    return result
