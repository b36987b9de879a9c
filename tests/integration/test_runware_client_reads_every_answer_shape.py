"""Every documented (and tolerated) shape of a getResponse answer maps to the right status."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest

from reconciler.clips import CheckError, Failed, Processing, Succeeded, TaskStatus, UnknownTask
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient

API_KEY = "sim-key"
TASK = "6f1c1f5e-4f36-4c4e-9a53-0b1f3f0b1a01"
URL_1 = "https://vm.runware.ai/video/os/x/ws/2/vi/v1.mp4"
URL_2 = "https://vm.runware.ai/video/os/x/ws/2/vi/v2.mp4"


async def status_for(body: Any, status_code: int = 200) -> TaskStatus:
    """What the client makes of one answer to a request about TASK."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == [{"taskType": "getResponse", "taskUUID": TASK}]
        return httpx.Response(status_code, json=body)

    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", API_KEY, transport=transport) as client:
        return (await client.get_statuses([TASK]))[TASK]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"errors": [{"taskUUID": TASK, "code": "timeoutProvider", "message": "slow"}]},
            Failed("timeoutProvider", "slow"),
            id="errors-entry",
        ),
        pytest.param(
            {
                "data": [
                    {
                        "taskUUID": TASK,
                        "status": "error",
                        "error": {"code": "providerContentPolicyViolation", "message": "no"},
                    }
                ]
            },
            Failed("providerContentPolicyViolation", "no"),
            id="data-item-with-nested-error",
        ),
        pytest.param(
            {"data": [{"taskUUID": TASK, "status": "error", "code": "x", "message": "flat"}]},
            Failed("x", "flat"),
            id="data-item-with-flat-error",
        ),
        pytest.param(
            {"error": {"taskUUID": TASK, "code": "taskCancelled", "message": "gone"}},
            Failed("taskCancelled", "gone"),
            id="singular-error-key",
        ),
        pytest.param(
            {"data": [{"taskUUID": TASK, "status": "error"}]},
            Failed("unknownError", "unknownError"),
            id="error-without-details",
        ),
        pytest.param(
            {"errors": [{"taskUUID": TASK, "code": "taskExpired", "message": "old"}]},
            UnknownTask("taskExpired", "old"),
            id="expired",
        ),
        pytest.param(
            {"data": [], "errors": [{"taskUUID": TASK, "code": "taskNotFound"}]},
            UnknownTask("taskNotFound", "taskNotFound"),
            id="not-found-without-message",
        ),
        pytest.param(
            {
                "data": [
                    {"taskUUID": TASK, "status": "success", "videoURL": URL_1, "videoUUID": "v1"},
                    {"taskUUID": TASK, "status": "success", "videoURL": URL_2, "videoUUID": "v2"},
                ]
            },
            Succeeded(URL_1, "v1"),
            id="cumulative-results-first-wins",
        ),
        pytest.param(
            {
                "data": [
                    {"taskUUID": TASK, "status": "error", "error": {"code": "a", "message": "b"}},
                    {"taskUUID": TASK, "status": "success", "videoURL": URL_2},
                ]
            },
            Succeeded(URL_2, None),
            id="one-of-several-results-succeeded",
        ),
        pytest.param(
            {"data": [{"taskUUID": TASK, "status": "success"}]},
            CheckError("Runware reported success without a video URL"),
            id="success-without-url",
        ),
    ],
)
async def test_terminal_shapes(body: Any, expected: TaskStatus) -> None:
    assert await status_for(body) == expected


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"status": "processing", "progress": 60}, Processing(60)),
        ({"status": "pending"}, Processing()),
        ({"status": "queued"}, Processing()),
        ({"status": "scheduled", "progress": "12"}, Processing(12)),
        ({"status": "somethingNew", "progress": 33.9}, Processing(33)),
        ({}, Processing()),
        ({"status": None, "progress": {"odd": 1}}, Processing()),
    ],
)
async def test_anything_not_success_or_error_is_processing(
    item: dict[str, Any], expected: Processing
) -> None:
    assert await status_for({"data": [{"taskUUID": TASK, **item}]}) == expected


async def test_client_error_naming_tasks_is_per_task() -> None:
    body = {"errors": [{"taskUUID": TASK, "code": "taskNotFound", "message": "unknown"}]}
    assert await status_for(body, 400) == UnknownTask("taskNotFound", "unknown")


async def test_client_error_naming_no_task_is_a_check_error() -> None:
    body = {"errors": [{"code": "invalidTaskType", "message": "what is this"}]}
    status = await status_for(body, 400)
    assert isinstance(status, CheckError)
    assert "HTTP 400" in status.message
    assert "invalidTaskType: what is this" in status.message


async def test_unknown_task_error_naming_no_task_is_that_task_when_asked_alone() -> None:
    status = await status_for({"error": {"code": "taskNotFound", "message": "nope"}}, 404)
    assert status == UnknownTask("taskNotFound", "nope")


async def test_client_error_for_every_request_naming_no_task_fails_each_check() -> None:
    # Refused whole, the batch is split (one bad id must cost only itself,
    # test_one_bad_task_id_costs_only_itself.py); refused every time, each task is a CheckError.
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(400, json={"errors": [{"code": "invalidPayload"}]})

    uuids = [str(uuid4()) for _ in range(3)]
    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", API_KEY, transport=transport) as client:
        statuses = await client.get_statuses(uuids)

    assert len(requests) == 5  # [a, b, c], then [a] and [b, c], then [b] and [c]
    assert all(isinstance(statuses[u], CheckError) for u in uuids)


@pytest.mark.parametrize("shape", ["errors", "data"])
async def test_simulated_failures_in_both_shapes_and_unknown_tasks(shape: str) -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        failed, running, unknown = str(uuid4()), str(uuid4()), str(uuid4())
        sim.add_job(
            failed,
            duration=3600,
            outcome="error",
            error_code="timeoutProvider",
            error_message="too slow",
            error_shape="errors" if shape == "errors" else "data",
        )
        sim.add_job(running, duration=3600)
        sim.complete_now(failed)
        async with RunwareClient(sim.url, API_KEY) as client:
            statuses = await client.get_statuses([failed, running, unknown])

    assert statuses == {
        failed: Failed("timeoutProvider", "too slow"),
        running: Processing(0),
        unknown: UnknownTask("taskNotFound", f"No task found with taskUUID {unknown}."),
    }
    assert sim.counters.requests_total == 1


async def test_simulated_cumulative_results_give_the_first_video() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        task_uuid = str(uuid4())
        job = sim.add_job(task_uuid, duration=0, number_results=3)
        async with RunwareClient(sim.url, API_KEY) as client:
            statuses = await client.get_statuses([task_uuid])

    assert statuses[task_uuid] == Succeeded(job.video_urls()[0], job.video_uuids[0])
    assert len(set(job.video_uuids)) == 3


async def test_a_task_forgotten_by_runware_is_unknown() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        task_uuid = str(uuid4())
        sim.add_job(task_uuid, duration=0)
        sim.forget_job(task_uuid)
        async with RunwareClient(sim.url, API_KEY) as client:
            status = (await client.get_statuses([task_uuid]))[task_uuid]

    assert isinstance(status, UnknownTask)
    assert status.code == "taskNotFound"
