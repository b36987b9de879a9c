"""`reconciler demo` cancelled while its PostgreSQL is starting (Ctrl-C during start-up) leaves
no cluster running: the demo owns the cluster before the start begins, lets the start finish,
and stops it."""

from __future__ import annotations

import asyncio
import io
import socket
import threading

import pytest
from rich.console import Console

from reconciler.local import demo
from reconciler.local.localpg import LocalPostgres
from tests import process_guard
from tests.waiting import wait_until


class _StartGate:
    """Holds every `LocalPostgres.start()` at its beginning until `release` is set, so that the
    demo is cancelled while the start is under way, whatever the machine's speed."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.clusters: list[LocalPostgres] = []

    def cluster_class(self) -> type[LocalPostgres]:
        gate = self

        class HeldAtStart(LocalPostgres):
            def start(self) -> LocalPostgres:
                gate.clusters.append(self)
                gate.entered.set()
                gate.release.wait()
                try:
                    return super().start()
                finally:
                    gate.finished.set()

        return HeldAtStart


def _accepts_connections(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return False
    return True


async def test_cancelling_the_demo_while_postgres_starts_leaves_no_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = _StartGate()
    monkeypatch.setattr(demo, "LocalPostgres", gate.cluster_class())

    async def run_stack() -> None:
        async with demo.demo_stack(Console(file=io.StringIO())):
            raise AssertionError("the stack must not come up: the demo was cancelled")

    running = asyncio.create_task(run_stack())
    try:
        await wait_until(gate.entered.is_set)

        running.cancel()
        gate.release.set()  # the start goes on; the cancelled demo must still stop it
        await asyncio.wait([running])
        await wait_until(gate.finished.is_set)  # already so once the demo waited for it

        assert running.cancelled()
        [cluster] = gate.clusters
        assert cluster.port != 0  # it did start a server…
        assert not _accepts_connections(cluster.port)  # …and stopped it
        postmasters = [
            p for p in process_guard.descendants() if f"port={cluster.port}" in p.command
        ]
        assert postmasters == []
    finally:
        gate.release.set()
        running.cancel()
        await asyncio.wait([running])
        await wait_until(gate.finished.is_set)
        for cluster in gate.clusters:  # what a regressed demo left running
            await asyncio.to_thread(cluster.stop)
