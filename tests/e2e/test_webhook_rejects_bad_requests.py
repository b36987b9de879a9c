"""Each webhook rejection has its status code and writes nothing."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg
import pytest

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET, RunningService
from tests.projects import new_project, row_version


@pytest.fixture
async def project(db: asyncpg.Connection) -> UUID:
    return await new_project(db, {J.job_1: "pending"})


async def _assert_nothing_written(db: asyncpg.Connection, project: UUID, version: str) -> None:
    assert await row_version(db, project) == version
    assert await db.fetchval("select count(*) from reconciler.parked_results") == 0


@pytest.mark.parametrize(
    "token",
    [None, "", "wrong-token-0123456789", WEBHOOK_SECRET[:-1], WEBHOOK_SECRET + "x"],
    ids=["missing", "empty", "wrong", "prefix", "longer"],
)
async def test_missing_or_wrong_token_is_401(
    service: RunningService, db: asyncpg.Connection, project: UUID, token: str | None
) -> None:
    version = await row_version(db, project)
    response = await service.post_webhook(
        bodies.flat_success(J.job_1, bodies.video_url("x")), token=token
    )
    assert response.status_code == 401
    await _assert_nothing_written(db, project, version)


async def test_oversize_body_is_413(
    service: RunningService, db: asyncpg.Connection, project: UUID
) -> None:
    version = await row_version(db, project)
    body = bodies.flat_success(J.job_1, bodies.video_url("x")) | {"junk": "x" * 300_000}
    response = await service.post_webhook(body)
    assert response.status_code == 413
    await _assert_nothing_written(db, project, version)


async def test_body_naming_too_many_tasks_is_413_and_stores_nothing(
    service: RunningService, db: asyncpg.Connection, project: UUID
) -> None:
    version = await row_version(db, project)
    # Within the byte cap, one task over the default task cap of 1,000: the first item is the
    # project's own pending job, so a partial write would show.
    items = [bodies.flat_failure(J.job_1)] + [{"taskUUID": f"t{i}"} for i in range(1000)]
    response = await service.post_webhook({"data": items})
    assert response.status_code == 413
    assert response.json()["error"] == (
        "body names 1001 tasks; at most 1000 per body (RECONCILER_WEBHOOK_MAX_TASKS);"
        " nothing was stored"
    )
    await _assert_nothing_written(db, project, version)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"", b"\xff\xfe", b'{"taskUUID": "job-1"'],
    ids=["broken", "empty", "binary", "truncated"],
)
async def test_invalid_json_is_400(
    service: RunningService, db: asyncpg.Connection, project: UUID, raw: bytes
) -> None:
    version = await row_version(db, project)
    response = await service.post_webhook(None, raw=raw)
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]
    await _assert_nothing_written(db, project, version)


@pytest.mark.parametrize(
    "body",
    [
        {},
        [],
        {"status": "success", "videoURL": "https://vm.runware.ai/v.mp4"},
        {"data": [{"status": "success"}]},
        {"errors": [{"code": "timeoutProvider"}]},
        {"taskUUID": None, "status": "success"},
        {"taskUUID": {"nested": 1}},
        "job-1",
        42,
    ],
    ids=[
        "empty",
        "list",
        "no-uuid",
        "data-no-uuid",
        "errors-no-uuid",
        "null",
        "object",
        "str",
        "num",
    ],
)
async def test_body_without_task_uuid_is_400(
    service: RunningService, db: asyncpg.Connection, project: UUID, body: object
) -> None:
    version = await row_version(db, project)
    response = await service.post_webhook(None, raw=json.dumps(body).encode())
    assert response.status_code == 400
    assert "taskUUID" in response.json()["error"]
    await _assert_nothing_written(db, project, version)


@pytest.mark.parametrize(
    "url",
    [
        "http://vm.runware.ai/video/x.mp4",
        "https://evil.example.com/video/x.mp4",
        "https://vm.runware.ai.evil.example/x.mp4",
        "https://storage.runware.ai/x.mp4",
        "javascript:alert(1)",
        "not a url",
        # Python's urlsplit reads host vm.runware.ai; a browser reads evil.example.
        "https://evil.example\\@vm.runware.ai/v.mp4",
        "https://evil.example@vm.runware.ai/v.mp4",
    ],
)
async def test_disallowed_url_is_422_and_recorded(
    service: RunningService, db: asyncpg.Connection, project: UUID, url: str
) -> None:
    await db.execute(
        "insert into reconciler.jobs (job_id, project_id) values ($2, $1)", project, J.job_1
    )
    version = await row_version(db, project)

    response = await service.post_webhook(bodies.flat_success(J.job_1, url))

    assert response.status_code == 422
    assert J.job_1 in response.json()["rejected"]
    await _assert_nothing_written(db, project, version)
    error = await db.fetchval("select last_error from reconciler.jobs where job_id = $1", J.job_1)
    assert error.startswith("webhook: video URL")
