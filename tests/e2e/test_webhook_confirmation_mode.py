"""RECONCILER_WEBHOOK_VERIFY=api: the body is only a hint; what is written comes from
`getResponse`, so a leaked webhook token cannot plant a URL."""

from __future__ import annotations

import asyncpg

from reconciler.local.localpg import free_port
from reconciler.local.simulator import RunwareSimulator
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import RunningService, ServiceFactory
from tests.projects import clips_of, new_project


async def test_written_result_is_runwares_not_the_bodys(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    simulator.add_job(J.done, duration=0, outcome="success")
    simulator.add_job(J.busy, duration=3600)
    project = await new_project(db, {J.done: "pending", J.busy: "pending", J.unknown: "pending"})
    forged = bodies.video_url("forged")
    async with run_service(service_env | {"RECONCILER_WEBHOOK_VERIFY": "api"}) as url:
        service = RunningService(url, "", "postgres")
        done = await service.post_webhook(bodies.flat_success(J.done, forged))
        busy = await service.post_webhook(bodies.flat_success(J.busy, forged))
        unknown = await service.post_webhook(bodies.flat_success(J.unknown, forged))

    assert done.json()["applied"] == [J.done]
    assert busy.json()["ignored"] == [J.busy]
    assert unknown.json()["ignored"] == [J.unknown]
    assert await clips_of(db, project) == {
        J.done: simulator.truth()[J.done],
        J.busy: "pending",
        J.unknown: "pending",
    }
    assert simulator.counters.get_response_tasks == 3


async def test_runware_unreachable_means_503(
    service_env: dict[str, str], run_service: ServiceFactory, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    env = service_env | {
        "RECONCILER_WEBHOOK_VERIFY": "api",
        "RUNWARE_API_URL": f"http://127.0.0.1:{free_port()}/v1",
        "RECONCILER_RUNWARE_MAX_RETRIES": "0",
    }
    async with run_service(env) as url:
        response = await RunningService(url, "", "postgres").post_webhook(
            bodies.flat_success(J.job_1, bodies.video_url("x"))
        )

    assert response.status_code == 503
    assert await clips_of(db, project) == {J.job_1: "pending"}
