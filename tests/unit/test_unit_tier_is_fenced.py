"""The unit tier's fence (tests/unit/conftest.py) holds: no TCP socket opens here."""

from __future__ import annotations

import socket
import traceback

import httpx
import pytest


def test_opening_a_tcp_socket_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="without a network"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


async def test_an_http_client_cannot_reach_loopback() -> None:
    # httpx's transport wraps the refusal in an exception group: look for it anywhere inside.
    async with httpx.AsyncClient() as client:
        try:
            await client.get("http://127.0.0.1:9/")
        except BaseException as refused:
            trace = "".join(traceback.format_exception(refused))
        else:
            pytest.fail("the request went out")
    assert "without a network" in trace


def test_unix_sockets_still_work() -> None:
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
