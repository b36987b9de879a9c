"""The simulator's HTTP API: array bodies, auth, conflicts, answers, faults, counters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from reconciler.local.simulator import ApiFaults, RunwareSimulator, SimulatorConfig

API_KEY = "sim-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def sim() -> AsyncIterator[RunwareSimulator]:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY, seed=3)) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def submit(task_uuid: str, **extra: Any) -> list[dict[str, Any]]:
    return [
        {
            "taskType": "videoInference",
            "taskUUID": task_uuid,
            "model": "klingai:5@3",
            "positivePrompt": "a cat",
            "deliveryMethod": "async",
            **extra,
        }
    ]


async def test_submit_is_acknowledged_and_a_resubmit_conflicts(
    sim: RunwareSimulator, http: httpx.AsyncClient
) -> None:
    task_uuid = str(uuid4())
    first = await http.post(sim.url, json=submit(task_uuid), headers=AUTH)
    again = await http.post(sim.url, json=submit(task_uuid), headers=AUTH)

    assert first.status_code == 200
    assert first.json() == {"data": [{"taskType": "videoInference", "taskUUID": task_uuid}]}
    assert again.status_code == 400
    [error] = again.json()["errors"]
    assert error["code"] == "conflictTaskUUID"
    assert error["taskUUID"] == task_uuid


async def test_get_response_answers_several_tasks_in_one_request(
    sim: RunwareSimulator, http: httpx.AsyncClient
) -> None:
    running, done, unknown = str(uuid4()), str(uuid4()), str(uuid4())
    sim.add_job(running, duration=3600)
    job = sim.add_job(done, duration=0)
    body = [{"taskType": "getResponse", "taskUUID": u} for u in (running, done, unknown)]
    answer = await http.post(sim.base_url + "/", json=body, headers=AUTH)

    assert answer.status_code == 200
    data, errors = answer.json()["data"], answer.json()["errors"]
    assert data[0] == {
        "taskType": "videoInference",
        "taskUUID": running,
        "status": "processing",
        "progress": 0,
    }
    assert data[1]["status"] == "success"
    assert data[1]["videoURL"] == job.video_urls()[0]
    assert data[1]["videoURL"].startswith("https://vm.runware.ai/video/os/sim/ws/2/vi/")
    assert [(e["taskUUID"], e["code"]) for e in errors] == [(unknown, "taskNotFound")]
    assert sim.counters.requests_by_task_type == {"getResponse": 1}
    assert sim.counters.get_response_tasks == 3
    assert sim.counters.polls_by_task == {running: 1, done: 1, unknown: 1}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}],
)
async def test_a_wrong_or_missing_key_is_401(
    sim: RunwareSimulator, http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    answer = await http.post(sim.url, json=submit(str(uuid4())), headers=headers)
    assert answer.status_code == 401
    assert answer.json()["errors"][0]["code"] == "invalidApiKey"
    assert sim.jobs() == []


async def test_the_legacy_authentication_task_is_accepted(
    sim: RunwareSimulator, http: httpx.AsyncClient
) -> None:
    task_uuid = str(uuid4())
    body = [{"taskType": "authentication", "apiKey": API_KEY}, *submit(task_uuid)]
    answer = await http.post(sim.url, json=body)
    assert answer.status_code == 200
    auth, ack = answer.json()["data"]
    assert auth["taskType"] == "authentication"
    assert ack == {"taskType": "videoInference", "taskUUID": task_uuid}


@pytest.mark.parametrize("content", [b"{}", b"not json", b"[1, 2]", b'{"taskType": "x"}'])
async def test_a_body_that_is_not_an_array_of_tasks_is_400(
    sim: RunwareSimulator, http: httpx.AsyncClient, content: bytes
) -> None:
    answer = await http.post(sim.url, content=content, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "invalidRequestBody"
    assert sim.counters.requests_malformed == 1


async def test_refusals_come_with_retry_after(
    sim: RunwareSimulator, http: httpx.AsyncClient
) -> None:
    sim.config.api = ApiFaults(error_rate=1.0, retry_after_seconds=3)
    answers = [
        await http.post(sim.url, json=[{"taskType": "getResponse", "taskUUID": "t"}], headers=AUTH)
        for _ in range(10)
    ]
    assert {a.status_code for a in answers} <= {429, 503}
    assert all(a.headers["Retry-After"] == "3" for a in answers)
    assert sim.counters.api_faults_injected == 10


async def test_unsupported_task_types_and_delivery_methods_are_refused(
    sim: RunwareSimulator, http: httpx.AsyncClient
) -> None:
    task_uuid = str(uuid4())
    body = [
        {"taskType": "imageInference", "taskUUID": str(uuid4())},
        *submit(task_uuid, deliveryMethod="sync"),
        *submit(str(uuid4()), webhookURL="ftp://nowhere"),
    ]
    answer = await http.post(sim.url, json=body, headers=AUTH)
    assert answer.status_code == 400
    codes = [e["code"] for e in answer.json()["errors"]]
    assert codes == ["unsupportedTaskType", "unsupportedDeliveryMethod", "invalidWebhookURL"]
    assert sim.jobs() == []


async def test_truth_and_counter_reset(sim: RunwareSimulator, http: httpx.AsyncClient) -> None:
    ok, bad, slow = str(uuid4()), str(uuid4()), str(uuid4())
    job = sim.add_job(ok, duration=0)
    sim.add_job(bad, duration=0, outcome="error")
    sim.add_job(slow, duration=3600)
    await http.post(sim.url, json=[{"taskType": "getResponse", "taskUUID": ok}], headers=AUTH)
    assert sim.truth() == {ok: job.video_urls()[0], bad: "failed", slow: "pending"}
    assert sim.counters.requests_total == 1

    sim.reset_counters()
    assert sim.counters.requests_total == 0
    assert sim.counters.polls_by_task == {}
    with pytest.raises(ValueError, match="already exists"):
        sim.add_job(ok)


async def test_jobs_from_the_api_follow_the_configured_failure_rate() -> None:
    config = SimulatorConfig(api_key=API_KEY, seed=1)
    config.jobs.fail_rate = 1.0
    config.jobs.seconds = 0
    async with RunwareSimulator(config) as sim, httpx.AsyncClient() as http:
        for _ in range(3):
            await http.post(sim.url, json=submit(str(uuid4())), headers=AUTH)
        assert set(sim.truth().values()) == {"failed"}
