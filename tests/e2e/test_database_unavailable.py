"""With the database unreachable the service stays up, says it is not ready, and answers 503
instead of pretending."""

from __future__ import annotations

import httpx

from reconciler.local.localpg import free_port
from tests.plugin import ADMIN_TOKEN, ServiceFactory


async def test_not_ready_and_503_while_database_is_down(
    service_env: dict[str, str], run_service: ServiceFactory
) -> None:
    env = service_env | {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        check = await client.post(
            "/check-clips-status",
            json={"project_id": "00000000-0000-0000-0000-000000000001"},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert health.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert check.status_code == 503
    assert check.json()["success"] is False
    assert check.headers["retry-after"]
