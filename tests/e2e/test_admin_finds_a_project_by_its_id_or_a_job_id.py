"""The admin page's search takes a project id or a job id: a project opens its page, a job
opens the page of the project holding it (a list when several do), anything else is a 404
naming what was searched, and a value that is not a UUID a 400; never a check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import new_project, tracked_project


@pytest.fixture
async def admin(
    service_env: dict[str, str], run_service: ServiceFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        run_service(service_env) as url,
        httpx.AsyncClient(base_url=url, auth=("", ADMIN_TOKEN), timeout=30) as client,
    ):
        yield client


async def _search(admin: httpx.AsyncClient, value: str) -> httpx.Response:
    return await admin.get("/admin/projects", params={"project_id": value})


async def test_a_project_id_or_a_job_id_finds_its_project(
    admin: httpx.AsyncClient, db: asyncpg.Connection, simulator: RunwareSimulator
) -> None:
    holder = await tracked_project(db, {J.search_own: "pending", J.search_other: "pending"})
    shared_a = await tracked_project(db, {J.search_shared: "pending"})
    shared_b = await tracked_project(db, {J.search_shared: "pending"})
    empty = await new_project(db, {})

    by_project = await _search(admin, str(empty))
    by_job = await _search(admin, f" {J.search_own.upper()} ")
    by_shared_job = await _search(admin, J.search_shared)
    unknown = uuid4()
    by_nothing = await _search(admin, str(unknown))
    not_an_id = await _search(admin, "not-a-uuid")

    assert by_project.status_code == 303
    assert by_project.headers["location"] == f"/admin/projects/{empty}"
    assert by_job.status_code == 303
    assert by_job.headers["location"] == f"/admin/projects/{holder}"
    assert by_shared_job.status_code == 200
    for project in (shared_a, shared_b):
        assert f'href="/admin/projects/{project}"' in by_shared_job.text
    assert str(holder) not in by_shared_job.text
    assert by_nothing.status_code == 404
    assert f"No project or job {unknown}." in by_nothing.text
    assert not_an_id.status_code == 400
    assert "A project or job id is a UUID." in not_an_id.text
    assert simulator.counters.requests_total == 0
