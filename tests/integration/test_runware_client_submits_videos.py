"""submit_video sends an async videoInference; a conflict means "already submitted"."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient, RunwareRequestFailed

API_KEY = "sim-key"


async def test_submit_creates_a_job_and_a_resubmit_is_accepted() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        task_uuid = str(uuid4())
        webhook = "http://127.0.0.1:9/webhooks/runware?token=t"
        async with RunwareClient(sim.url, API_KEY) as client:
            await client.submit_video(task_uuid, webhook_url=webhook, number_results=2)
            await client.submit_video(task_uuid, webhook_url=webhook)

        job = sim.job(task_uuid)
        assert job is not None
        assert job.webhook_url == webhook
        assert len(job.video_uuids) == 2
        assert sim.counters.submits == 1
        assert sim.counters.submit_conflicts == 1


async def test_submit_sends_the_documented_task() -> None:
    sent: list[object] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.extend(json.loads(request.content))
        task_uuid = json.loads(request.content)[0]["taskUUID"]
        return httpx.Response(
            200, json={"data": [{"taskType": "videoInference", "taskUUID": task_uuid}]}
        )

    task_uuid = str(uuid4())
    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", API_KEY, transport=transport) as client:
        await client.submit_video(task_uuid, webhook_url=None, model="m:1@1", prompt="p")

    assert sent == [
        {
            "taskType": "videoInference",
            "taskUUID": task_uuid,
            "model": "m:1@1",
            "positivePrompt": "p",
            "deliveryMethod": "async",
            "includeCost": True,
            "outputType": "URL",
            "outputFormat": "MP4",
            "numberResults": 1,
        }
    ]


async def test_a_refused_submit_raises_with_runware_reason() -> None:
    async with (
        RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim,
        RunwareClient(sim.url, API_KEY) as client,
    ):
        with pytest.raises(RunwareRequestFailed, match="invalidNumberResults"):
            await client.submit_video(str(uuid4()), webhook_url=None, number_results=9)
