"""The unit tier's fence: no PostgreSQL, no network. A unit test that reaches for either fails
at once, naming what it tried, instead of quietly turning into a slow integration test."""

from __future__ import annotations

import socket
from typing import Any

import pytest

_NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


@pytest.fixture
def pg_cluster() -> None:
    raise pytest.UsageError(
        "unit tests run without PostgreSQL: move this test to tests/integration"
    )


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse TCP/UDP sockets. Unix sockets stay: the event loop wakes itself through one."""
    real_init = socket.socket.__init__

    def guarded_init(self: socket.socket, family: Any = -1, *args: Any, **kwargs: Any) -> None:
        if family in _NETWORK_FAMILIES or family == -1:
            raise RuntimeError(
                "unit tests run without a network: use httpx.MockTransport, or move this test "
                "to tests/integration"
            )
        real_init(self, family, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "__init__", guarded_init)
