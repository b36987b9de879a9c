"""Every webhook envelope Runware may send is applied, on both transports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import clips_of, new_project

SUCCESS_SHAPES: list[Callable[[str, str], dict[str, Any]]] = [
    bodies.flat_success,
    bodies.wrapped_success,
]
FAILURE_SHAPES: list[Callable[[str], dict[str, Any]]] = [
    bodies.flat_failure,
    bodies.errors_failure,
    bodies.singular_error_failure,
    bodies.nested_error_failure,
]


@pytest.mark.parametrize("shape", SUCCESS_SHAPES, ids=lambda f: f.__name__)
async def test_success_is_written(
    service: RunningService, db: asyncpg.Connection, shape: Callable[[str, str], dict[str, Any]]
) -> None:
    project = await new_project(db, {J.job_1: "pending", J.other: "pending"})
    url = bodies.video_url(J.job_1)

    response = await service.post_webhook(shape(J.job_1, url))

    assert response.status_code == 200
    assert response.json()["applied"] == [J.job_1]
    assert await clips_of(db, project) == {J.job_1: url, J.other: "pending"}


@pytest.mark.parametrize("shape", FAILURE_SHAPES, ids=lambda f: f.__name__)
async def test_failure_is_written(
    service: RunningService, db: asyncpg.Connection, shape: Callable[[str], dict[str, Any]]
) -> None:
    project = await new_project(db, {J.job_1: "pending"})

    response = await service.post_webhook(shape(J.job_1))

    assert response.status_code == 200
    assert response.json()["applied"] == [J.job_1]
    assert await clips_of(db, project) == {J.job_1: "failed"}


async def test_extra_fields_are_ignored(service: RunningService, db: asyncpg.Connection) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    body = bodies.flat_success(J.job_1, bodies.video_url(J.job_1)) | {
        "unexpected": {"nested": [1, 2, 3]},
        "includeCost": True,
    }

    response = await service.post_webhook({"data": [body], "meta": "x"})

    assert response.status_code == 200
    assert (await clips_of(db, project))[J.job_1] == bodies.video_url(J.job_1)


async def test_several_tasks_in_one_body(service: RunningService, db: asyncpg.Connection) -> None:
    project = await new_project(db, {J.a: "pending", J.b: "pending"})
    body = {
        "data": [bodies.flat_success(J.a, bodies.video_url(J.a))],
        "errors": [{"taskUUID": J.b, "code": "timeoutProvider", "message": "slow"}],
    }

    response = await service.post_webhook(body)

    assert response.status_code == 200
    assert sorted(response.json()["applied"]) == sorted([J.a, J.b])
    assert await clips_of(db, project) == {J.a: bodies.video_url(J.a), J.b: "failed"}


async def test_progress_webhook_is_acknowledged_and_ignored(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.job_1: "pending"})

    response = await service.post_webhook({"taskUUID": J.job_1, "status": "processing"})

    assert response.status_code == 200
    assert response.json()["ignored"] == [J.job_1]
    assert await clips_of(db, project) == {J.job_1: "pending"}


async def test_failure_reason_is_kept_for_a_tracked_job(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    await db.execute(
        "insert into reconciler.jobs (job_id, project_id) values ($2, $1)", project, J.job_1
    )

    await service.post_webhook(bodies.flat_failure(J.job_1, "providerContentPolicyViolation"))

    row = await db.fetchrow(
        "select last_error, outcome from reconciler.jobs where job_id = $1", J.job_1
    )
    assert row is not None
    assert row["outcome"] == "failed"
    assert "providerContentPolicyViolation" in row["last_error"]


async def test_simulator_delivers_webhooks_end_to_end(
    service: RunningService, db: asyncpg.Connection, simulator: Any
) -> None:
    project = await new_project(db, {J.sim_ok: "pending", J.sim_bad: "pending"})
    simulator.add_job(J.sim_ok, duration=0, outcome="success", webhook_url=service.webhook_url())
    simulator.add_job(J.sim_bad, duration=0, outcome="error", webhook_url=service.webhook_url())

    await simulator.webhooks_settled()

    assert await clips_of(db, project) == {
        J.sim_ok: simulator.truth()[J.sim_ok],
        J.sim_bad: "failed",
    }
    assert simulator.counters.requests_total == 0  # no polling was needed
