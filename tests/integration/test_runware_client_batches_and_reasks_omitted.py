"""getResponse tasks go out in batches; a task the answer leaves out is asked again alone."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx

from reconciler.clips import CheckError, Processing, Succeeded
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient

API_KEY = "sim-key"
VIDEO_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/v1.mp4"


def asked(request: httpx.Request) -> list[str]:
    return [task["taskUUID"] for task in json.loads(request.content)]


def processing(task_uuid: str) -> dict[str, object]:
    return {"taskType": "videoInference", "taskUUID": task_uuid, "status": "processing"}


async def test_fifty_tasks_in_batches_of_twenty_make_three_requests() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        uuids = [str(uuid4()) for _ in range(50)]
        for i, task_uuid in enumerate(uuids):
            sim.add_job(task_uuid, duration=0 if i % 2 else 3600)
        async with RunwareClient(sim.url, API_KEY, batch_size=20) as client:
            statuses = await client.get_statuses(uuids)

        assert set(statuses) == set(uuids)
        assert sim.counters.requests_by_task_type["getResponse"] == 3
        assert sim.counters.get_response_tasks == 50
        now = sim.now()
        for job in sim.jobs():
            if job.finished(now):
                assert statuses[job.task_uuid] == Succeeded(job.video_urls()[0], job.video_uuids[0])
            else:
                assert isinstance(statuses[job.task_uuid], Processing)


async def test_every_task_is_answered_and_asked_once() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        uuids = [str(uuid4()) for _ in range(5)]
        for task_uuid in uuids:
            sim.add_job(task_uuid, duration=0)
        async with RunwareClient(sim.url, API_KEY, batch_size=50) as client:
            statuses = await client.get_statuses(uuids + uuids[:3])

        assert set(statuses) == set(uuids)
        assert sim.counters.requests_total == 1
        assert sim.counters.get_response_tasks == 5
        for job in sim.jobs():
            assert statuses[job.task_uuid] == Succeeded(job.video_urls()[0], job.video_uuids[0])


async def test_no_tasks_no_request() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"data": []})

    async with RunwareClient(
        "https://api.test/v1", API_KEY, transport=httpx.MockTransport(handler)
    ) as client:
        assert await client.get_statuses([]) == {}
    assert requests == []


async def test_omitted_task_is_asked_again_on_its_own() -> None:
    shy, others = str(uuid4()), [str(uuid4()), str(uuid4())]
    requests: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tasks = asked(request)
        requests.append(tasks)
        if len(tasks) > 1:  # the batch answer leaves `shy` out
            return httpx.Response(200, json={"data": [processing(u) for u in tasks if u != shy]})
        success = {"taskUUID": shy, "status": "success", "videoURL": VIDEO_URL, "videoUUID": "v1"}
        return httpx.Response(200, json={"data": [success]})

    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", API_KEY, transport=transport) as client:
        statuses = await client.get_statuses([shy, *others])

    assert requests == [[shy, *others], [shy]]
    assert statuses[shy] == Succeeded(VIDEO_URL, "v1")
    assert all(isinstance(statuses[u], Processing) for u in others)


async def test_task_omitted_twice_is_a_check_error() -> None:
    shy, other = str(uuid4()), str(uuid4())
    requests: list[list[str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tasks = asked(request)
        requests.append(tasks)
        return httpx.Response(200, json={"data": [processing(u) for u in tasks if u != shy]})

    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", API_KEY, transport=transport) as client:
        statuses = await client.get_statuses([shy, other])

    assert requests == [[shy, other], [shy]]
    status = statuses[shy]
    assert isinstance(status, CheckError)
    assert "did not mention" in status.message
    assert statuses[other] == Processing()
