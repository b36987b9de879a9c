"""Every webhook envelope Runware may send is applied, on both transports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from tests import webhook_bodies as bodies
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
    project = await new_project(db, {"job-1": "pending", "other": "pending"})
    url = bodies.video_url("job-1")

    response = await service.post_webhook(shape("job-1", url))

    assert response.status_code == 200
    assert response.json()["applied"] == ["job-1"]
    assert await clips_of(db, project) == {"job-1": url, "other": "pending"}


@pytest.mark.parametrize("shape", FAILURE_SHAPES, ids=lambda f: f.__name__)
async def test_failure_is_written(
    service: RunningService, db: asyncpg.Connection, shape: Callable[[str], dict[str, Any]]
) -> None:
    project = await new_project(db, {"job-1": "pending"})

    response = await service.post_webhook(shape("job-1"))

    assert response.status_code == 200
    assert response.json()["applied"] == ["job-1"]
    assert await clips_of(db, project) == {"job-1": "failed"}


async def test_extra_fields_are_ignored(service: RunningService, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"job-1": "pending"})
    body = bodies.flat_success("job-1", bodies.video_url("job-1")) | {
        "unexpected": {"nested": [1, 2, 3]},
        "includeCost": True,
    }

    response = await service.post_webhook({"data": [body], "meta": "x"})

    assert response.status_code == 200
    assert (await clips_of(db, project))["job-1"] == bodies.video_url("job-1")


async def test_several_tasks_in_one_body(service: RunningService, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"a": "pending", "b": "pending"})
    body = {
        "data": [bodies.flat_success("a", bodies.video_url("a"))],
        "errors": [{"taskUUID": "b", "code": "timeoutProvider", "message": "slow"}],
    }

    response = await service.post_webhook(body)

    assert response.status_code == 200
    assert sorted(response.json()["applied"]) == ["a", "b"]
    assert await clips_of(db, project) == {"a": bodies.video_url("a"), "b": "failed"}


async def test_progress_webhook_is_acknowledged_and_ignored(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"job-1": "pending"})

    response = await service.post_webhook({"taskUUID": "job-1", "status": "processing"})

    assert response.status_code == 200
    assert response.json()["ignored"] == ["job-1"]
    assert await clips_of(db, project) == {"job-1": "pending"}


async def test_failure_reason_is_kept_for_a_tracked_job(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"job-1": "pending"})
    await db.execute(
        "insert into reconciler.jobs (job_id, project_id) values ('job-1', $1)", project
    )

    await service.post_webhook(bodies.flat_failure("job-1", "providerContentPolicyViolation"))

    row = await db.fetchrow("select last_error, outcome from reconciler.jobs where job_id='job-1'")
    assert row is not None
    assert row["outcome"] == "failed"
    assert "providerContentPolicyViolation" in row["last_error"]


async def test_simulator_delivers_webhooks_end_to_end(
    service: RunningService, db: asyncpg.Connection, simulator: Any
) -> None:
    project = await new_project(db, {"sim-ok": "pending", "sim-bad": "pending"})
    simulator.add_job("sim-ok", duration=0, outcome="success", webhook_url=service.webhook_url())
    simulator.add_job("sim-bad", duration=0, outcome="error", webhook_url=service.webhook_url())

    await simulator.webhooks_settled()

    assert await clips_of(db, project) == {
        "sim-ok": simulator.truth()["sim-ok"],
        "sim-bad": "failed",
    }
    assert simulator.counters.requests_total == 0  # no polling was needed
