"""Project ids in admin URLs are checked: not a UUID → 400 (JSON under /admin/api, a page
otherwise), an unknown project → 404; never a 500, never a check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import new_project

BAD_IDS = [
    "not-a-uuid",
    "1",
    "00000000-0000-0000-0000-00000000000g",
    "00000000-0000-0000-0000-0000000000001",
    "x" * 5000,
    "%00",
    "%E2%80%AE00000000-0000-0000-0000-000000000001",
    "%F0%9F%92%A5",
    "<script>alert(1)",
    "...",
    "null",
]


@pytest.fixture
async def admin(
    service_env: dict[str, str], run_service: ServiceFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        run_service(service_env) as url,
        httpx.AsyncClient(base_url=url, auth=("", ADMIN_TOKEN), timeout=30) as client,
    ):
        yield client


@pytest.mark.parametrize("project_id", BAD_IDS)
async def test_bad_ids_are_400(admin: httpx.AsyncClient, project_id: str) -> None:
    as_json = await admin.get(f"/admin/api/projects/{project_id}")
    page = await admin.get(f"/admin/projects/{project_id}")
    found = await admin.get("/admin/projects", params={"project_id": project_id})

    assert as_json.status_code == 400
    assert as_json.json() == {"error": "project id must be a UUID"}
    for response in (page, found):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")
        assert "<script>alert(1)" not in response.text
    assert "A project id is a UUID." in page.text
    assert "A project or job id is a UUID." in found.text  # the search takes either


async def test_unknown_project_is_404(
    admin: httpx.AsyncClient, simulator: RunwareSimulator
) -> None:
    unknown = uuid4()

    as_json = await admin.get(f"/admin/api/projects/{unknown}")
    page = await admin.get(f"/admin/projects/{unknown}")

    assert as_json.status_code == 404
    assert as_json.json() == {"error": "project not found"}
    assert page.status_code == 404
    assert "Project not found" in page.text
    assert simulator.counters.requests_total == 0


async def test_find_form_redirects_to_the_project(
    admin: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {})

    response = await admin.get("/admin/projects", params={"project_id": f"  {project} "})

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/projects/{project}"


async def test_unknown_static_file_is_404(admin: httpx.AsyncClient) -> None:
    for name in ("nothing.js", "..%2Fadmin.py", "admin.js.map"):
        response = await admin.get(f"/admin/static/{name}")
        assert response.status_code == 404
