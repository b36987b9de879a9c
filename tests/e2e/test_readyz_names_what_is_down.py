"""/readyz needs no credentials, so it says which component is down — `{"database":
"unavailable", …}`, a flat component → state dict — and never the driver's error, which names
hosts and ports; the detail goes to the log."""

from __future__ import annotations

import logging

import httpx
import pytest

from reconciler.local.localpg import free_port
from tests.plugin import ServiceFactory

PASSWORD = "readyz-db-password-0123"


async def test_readyz_names_the_database_and_not_the_error(
    service_env: dict[str, str], run_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler")
    port = free_port()  # nothing listens there
    env = service_env | {"DATABASE_URL": f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/x"}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 503
    assert ready.json() == {"database": "unavailable", "status": "unavailable"}
    for detail in (str(port), "127.0.0.1", "Connect", PASSWORD):
        assert detail not in ready.text
    # The operator still learns why, from the log.
    logged = [r.getMessage() for r in caplog.records if r.name == "reconciler.http.health"]
    assert any("database" in message and str(port) in message for message in logged)


async def test_readyz_is_a_flat_dict_of_states_when_all_is_well(
    service_env: dict[str, str], run_service: ServiceFactory
) -> None:
    async with run_service(service_env) as url, httpx.AsyncClient(base_url=url) as client:
        ready = await client.get("/readyz")

    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "status": "ready"}
