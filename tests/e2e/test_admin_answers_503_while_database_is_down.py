"""With the database unreachable the admin page, its JSON and "check now" answer 503 —
never a 500, never a driver's message — and check nothing."""

from __future__ import annotations

import re
from uuid import uuid4

import asyncpg
import httpx

from reconciler.local.localpg import free_port
from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import new_project

TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


async def test_503_while_database_is_down(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    down_env = service_env | {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none"}
    async with httpx.AsyncClient(auth=("", ADMIN_TOKEN), timeout=30) as client:
        # A form rendered by a healthy replica: replicas sharing the admin token accept each
        # other's forms (the CSRF key is derived from it).
        async with run_service(service_env) as healthy:
            page = await client.get(f"{healthy}/admin/projects/{project}")
            match = TOKEN_FIELD.search(page.text)
            assert match is not None
        async with run_service(down_env) as url:
            overview = await client.get(f"{url}/admin")
            overview_json = await client.get(f"{url}/admin/api/overview")
            project_json = await client.get(f"{url}/admin/api/projects/{uuid4()}")
            project_page = await client.get(f"{url}/admin/projects/{project}")
            check = await client.post(
                f"{url}/admin/projects/{project}/check",
                data={"csrf_token": match.group(1)},
                headers={"Origin": url, "Sec-Fetch-Site": "same-origin"},
            )

    for response in (overview, overview_json, project_json, project_page, check):
        assert response.status_code == 503, response.request.url
        assert "127.0.0.1" not in response.text
    assert overview_json.json() == {"error": "database unavailable"}
    assert "Nothing was checked" in check.text
    assert simulator.counters.requests_total == 0
