"""Every rejection of the check endpoint: a clear status and message, nothing written, and
Runware never asked."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import new_project, row_version


@pytest.fixture
async def untouched_project(db: asyncpg.Connection, simulator: RunwareSimulator) -> UUID:
    simulator.add_job(J.j, duration=0, outcome="success")
    return await new_project(db, {J.j: "pending"})


async def _assert_untouched(
    db: asyncpg.Connection, simulator: RunwareSimulator, project: UUID, version: str
) -> None:
    assert await row_version(db, project) == version
    assert await db.fetchval("select count(*) from reconciler.jobs") == 0
    assert simulator.counters.requests_total == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "must be JSON"),
        (b"", "must be JSON"),
        (b"[1, 2]", "project_id is required"),
        (b"{}", "project_id is required"),
        (b'{"project_id": null}', "project_id is required"),
        (b'{"project_id": "not-a-uuid"}', "must be a UUID"),
        (b'{"project_id": 12345}', "must be a UUID"),
        (b'{"project_id": ["x"]}', "must be a UUID"),
    ],
    ids=["text", "empty", "array", "no-id", "null-id", "bad-uuid", "number", "list"],
)
async def test_malformed_body_is_400(
    service: RunningService,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    untouched_project: UUID,
    body: bytes,
    message: str,
) -> None:
    version = await row_version(db, untouched_project)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/check-clips-status",
            content=body,
            headers=service.headers() | {"content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert message in response.json()["error"]
    await _assert_untouched(db, simulator, untouched_project, version)


async def test_oversize_body_is_413(
    service: RunningService,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    untouched_project: UUID,
) -> None:
    version = await row_version(db, untouched_project)
    padding = "x" * (70 * 1024)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/check-clips-status",
            json={"project_id": str(untouched_project), "padding": padding},
            headers=service.headers(),
        )
    assert response.status_code == 413
    assert response.json()["success"] is False
    await _assert_untouched(db, simulator, untouched_project, version)


async def test_unknown_project_is_404(service: RunningService, simulator: RunwareSimulator) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/check-clips-status", json={"project_id": str(uuid4())}, headers=service.headers()
        )
    assert response.status_code == 404
    assert response.json() == {"success": False, "error": "Project not found"}
    assert simulator.counters.requests_total == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dGVzdDp0ZXN0"},
        {"Authorization": "Bearer"},
        {"apikey": "test-admin-token"},
    ],
    ids=["none", "wrong", "basic", "empty-bearer", "apikey-only"],
)
async def test_missing_or_wrong_token_is_401(
    service: RunningService,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    untouched_project: UUID,
    headers: dict[str, str],
) -> None:
    version = await row_version(db, untouched_project)
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.post(
            "/check-clips-status", json={"project_id": str(untouched_project)}, headers=headers
        )
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Unauthorized"}
    await _assert_untouched(db, simulator, untouched_project, version)


async def test_health_and_readiness(service: RunningService) -> None:
    async with httpx.AsyncClient(base_url=service.url) as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
