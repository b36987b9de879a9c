"""The check endpoint keeps the `check-clips-status` edge function's contract, field for field."""

from __future__ import annotations

import math
from typing import Any

import asyncpg
import httpx
import pytest

from reconciler.local.localpg import free_port
from reconciler.local.simulator import RunwareSimulator
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.plugin import RunningService, ServiceFactory
from tests.projects import clips_of, new_project, row_version

DONE_URL = "https://vm.runware.ai/video/os/old/ws/2/vi/done.mp4"


async def _check(
    service: RunningService, body: Any, path: str = "/check-clips-status"
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        return await client.post(path, json=body, headers=service.headers())


async def test_full_response_contract(
    service: RunningService, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.job_ok, duration=0, outcome="success")
    simulator.add_job(J.job_bad, duration=0, outcome="error", error_code="timeoutProvider")
    simulator.add_job(J.job_slow, duration=3600)
    project = await new_project(
        db,
        {
            J.job_done: DONE_URL,
            J.job_old_fail: "failed",
            J.job_ok: "pending",
            J.job_bad: "pending",
            J.job_slow: "pending",
        },
    )

    response = await _check(service, {"project_id": str(project)})

    assert response.status_code == 200
    body = response.json()
    ok_url = simulator.truth()[J.job_ok]
    expected_clips = {
        J.job_done: DONE_URL,
        J.job_old_fail: "failed",
        J.job_ok: ok_url,
        J.job_bad: "failed",
        J.job_slow: "pending",
    }
    assert {k: v for k, v in body.items() if k != "details"} == {
        "success": True,
        "project_id": str(project),
        "total_clips": 5,
        "completed": 2,
        "pending": 1,
        "failed": 2,
        "clips": expected_clips,
    }
    details = {d["jobId"]: d for d in body["details"]}
    assert set(details) == set(expected_clips)
    assert details[J.job_done] == {
        "jobId": J.job_done,
        "status": "completed",
        "videoUrl": DONE_URL,
        "alreadyProcessed": True,
    }
    # A clip that failed before the check says why too (issue 20): `error`, as the edge
    # function's failed details carry it; this one was written "failed" by the app.
    assert details[J.job_old_fail] == {
        "jobId": J.job_old_fail,
        "status": "failed",
        "videoUrl": None,
        "alreadyProcessed": True,
        "error": "no reason recorded",
    }
    assert details[J.job_ok] == {
        "jobId": J.job_ok,
        "status": "completed",
        "videoUrl": ok_url,
        "alreadyProcessed": False,
    }
    assert details[J.job_bad]["status"] == "failed"
    assert details[J.job_bad]["alreadyProcessed"] is False
    assert "timeoutProvider" in details[J.job_bad]["error"]
    assert details[J.job_slow] == {
        "jobId": J.job_slow,
        "status": "pending",
        "videoUrl": None,
        "alreadyProcessed": False,
    }
    assert await clips_of(db, project) == expected_clips


async def test_alias_path_answers_the_same(
    service: RunningService, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.a1, duration=0, outcome="success")
    project = await new_project(db, {J.a1: "pending"})

    response = await _check(
        service, {"project_id": str(project)}, "/functions/v1/check-clips-status"
    )

    assert response.status_code == 200
    assert response.json()["completed"] == 1


async def test_settled_clips_are_not_rechecked(
    service: RunningService, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.done: DONE_URL, J.gone: "failed"})
    before = await row_version(db, project)

    response = await _check(service, {"project_id": str(project)})

    assert response.status_code == 200
    assert all(d["alreadyProcessed"] for d in response.json()["details"])
    assert simulator.counters.requests_total == 0
    assert await row_version(db, project) == before


async def test_no_database_write_when_nothing_changed(
    service: RunningService, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.slow_1, duration=3600)
    simulator.add_job(J.slow_2, duration=3600)
    project = await new_project(db, {J.slow_1: "pending", J.slow_2: "pending", J.x: DONE_URL})
    project_before = await row_version(db, project)
    first = await _check(service, {"project_id": str(project)})  # starts tracking the jobs
    tracking_before = await db.fetch("select job_id, xmin::text from reconciler.jobs order by 1")

    second = await _check(service, {"project_id": str(project)})

    assert first.status_code == second.status_code == 200
    assert second.json()["pending"] == 2
    assert simulator.counters.get_response_tasks == 4  # both calls really asked Runware
    assert await row_version(db, project) == project_before
    assert await db.fetch("select job_id, xmin::text from reconciler.jobs order by 1") == (
        tracking_before
    )


async def test_runware_unreachable_gives_error_status_and_keeps_pending(
    service_env: dict[str, str], run_service: ServiceFactory, db: asyncpg.Connection
) -> None:
    env = service_env | {
        "RUNWARE_API_URL": f"http://127.0.0.1:{free_port()}/v1",
        "RECONCILER_RUNWARE_MAX_RETRIES": "0",
    }
    project = await new_project(db, {J.j: "pending"})
    before = await row_version(db, project)

    async with run_service(env) as url:
        service = RunningService(url, env["RECONCILER_ADMIN_TOKEN"], "postgres")
        response = await _check(service, {"project_id": str(project)})

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    assert body["pending"] == 1
    assert body["details"][0]["status"] == "error"
    assert body["details"][0]["error"]
    assert await row_version(db, project) == before


async def test_rejected_runware_key_gives_error_status(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> None:
    simulator.add_job(J.j, duration=0, outcome="success")
    env = service_env | {"RUNWARE_API_KEY": "wrong-key"}
    project = await new_project(db, {J.j: "pending"})

    async with run_service(env) as url:
        response = await _check(
            RunningService(url, env["RECONCILER_ADMIN_TOKEN"], "p"), {"project_id": str(project)}
        )

    detail = response.json()["details"][0]
    assert detail["status"] == "error"
    assert "wrong-key" not in detail["error"]
    assert await clips_of(db, project) == {J.j: "pending"}


async def test_url_outside_the_allow_list_is_not_written(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> None:
    simulator.add_job(J.j, duration=0, outcome="success")  # answers a vm.runware.ai URL
    env = service_env | {"RECONCILER_ALLOWED_URL_HOSTS": "im.runware.ai"}
    project = await new_project(db, {J.j: "pending"})

    async with run_service(env) as url:
        response = await _check(
            RunningService(url, env["RECONCILER_ADMIN_TOKEN"], "p"), {"project_id": str(project)}
        )

    detail = response.json()["details"][0]
    assert detail["status"] == "error"
    assert "allow-list" in detail["error"]
    assert await clips_of(db, project) == {J.j: "pending"}


@pytest.mark.parametrize("batch_size", [20, 50])
async def test_fifty_pending_clips_cost_ceil_n_over_batch_requests(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    batch_size: int,
) -> None:
    jobs = [J.named(f"job-{i:02d}") for i in range(50)]
    for index, job in enumerate(jobs):
        simulator.add_job(job, duration=0 if index % 2 else 3600, outcome="success")
    project = await new_project(db, dict.fromkeys(jobs, "pending"))
    env = service_env | {"RECONCILER_BATCH_SIZE": str(batch_size)}

    async with run_service(env) as url:
        response = await _check(
            RunningService(url, env["RECONCILER_ADMIN_TOKEN"], "p"), {"project_id": str(project)}
        )

    assert response.json()["completed"] == 25
    assert simulator.counters.requests_by_task_type["getResponse"] == math.ceil(50 / batch_size)
    assert simulator.counters.get_response_tasks == 50


async def test_parked_webhook_result_is_applied_by_the_check(
    service: RunningService,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    from reconciler.store.postgres import connect_postgres_store

    store: FunctionStore = await connect_postgres_store(database_url)
    try:
        parked = await store.ingest_result(J.early, DONE_URL, None, 0)
    finally:
        await store.close()
    project = await new_project(db, {J.early: "pending"})

    response = await _check(service, {"project_id": str(project)})

    assert parked.kind == "parked"
    assert response.json()["clips"] == {J.early: DONE_URL}
    assert simulator.counters.requests_total == 0
