"""Finished jobs are POSTed to their webhookURL, one POST per item, flat or wrapped, retried."""

from __future__ import annotations

from uuid import uuid4

import pytest

from reconciler.local.simulator import (
    RunwareSimulator,
    SimulatorConfig,
    WebhookFaults,
    WebhookRecorder,
    WebhookRetry,
)
from reconciler.runware.client import RunwareClient
from tests.waiting import wait_until

API_KEY = "sim-key"


def config(shape: str = "flat", **retry: float) -> SimulatorConfig:
    webhook_retry = WebhookRetry.fast()
    for name, value in retry.items():
        setattr(webhook_retry, name, value)
    return SimulatorConfig(
        api_key=API_KEY,
        seed=11,
        webhooks=WebhookFaults(shape="flat" if shape == "flat" else "wrapped"),
        webhook_retry=webhook_retry,
    )


async def test_success_is_delivered_flat_after_a_submit() -> None:
    async with RunwareSimulator(config("flat")) as sim, WebhookRecorder() as receiver:
        task_uuid = str(uuid4())
        async with RunwareClient(sim.url, API_KEY) as client:
            await client.submit_video(task_uuid, webhook_url=receiver.url + "?token=abc")
        sim.complete_now(task_uuid)
        await wait_until(lambda: len(receiver.received) == 1)

        job = sim.job(task_uuid)
        assert job is not None
        assert receiver.received == [
            {
                "taskType": "videoInference",
                "taskUUID": task_uuid,
                "status": "success",
                "videoUUID": job.video_uuids[0],
                "videoURL": job.video_urls()[0],
                "cost": 0.11,
                "seed": job.seeds[0],
            }
        ]
        assert receiver.deliveries[0].query == "token=abc"
        assert sim.truth() == {task_uuid: job.video_urls()[0]}


async def test_a_job_finishes_on_its_own_clock() -> None:
    async with RunwareSimulator(config("flat")) as sim, WebhookRecorder() as receiver:
        task_uuid = str(uuid4())
        sim.add_job(task_uuid, duration=0.05, webhook_url=receiver.url)
        await wait_until(lambda: len(receiver.received) == 1)
        assert receiver.received[0]["taskUUID"] == task_uuid


async def test_several_results_are_several_wrapped_posts() -> None:
    async with RunwareSimulator(config("wrapped")) as sim, WebhookRecorder() as receiver:
        task_uuid = str(uuid4())
        job = sim.add_job(task_uuid, duration=3600, webhook_url=receiver.url, number_results=2)
        sim.complete_now(task_uuid)
        await wait_until(lambda: len(receiver.received) == 2)

        items = [body["data"][0] for body in receiver.received]
        assert all(set(body) == {"data"} and len(body["data"]) == 1 for body in receiver.received)
        assert {item["taskUUID"] for item in items} == {task_uuid}
        assert sorted(item["videoUUID"] for item in items) == sorted(job.video_uuids)


@pytest.mark.parametrize("shape", ["flat", "wrapped"])
async def test_failure_webhook_shapes(shape: str) -> None:
    async with RunwareSimulator(config(shape)) as sim, WebhookRecorder() as receiver:
        task_uuid = str(uuid4())
        sim.add_job(
            task_uuid,
            duration=0,
            outcome="error",
            webhook_url=receiver.url,
            error_code="providerContentPolicyViolation",
            error_message="blocked",
        )
        await wait_until(lambda: len(receiver.received) == 1)

        error = {
            "taskType": "videoInference",
            "taskUUID": task_uuid,
            "status": "error",
            "code": "providerContentPolicyViolation",
            "message": "blocked",
        }
        expected = error if shape == "flat" else {"errors": [error]}
        assert receiver.received == [expected]
        assert sim.truth() == {task_uuid: "failed"}


async def test_a_failing_receiver_gets_the_webhook_again() -> None:
    async with (
        RunwareSimulator(config("flat")) as sim,
        WebhookRecorder(fail_first=2, fail_status=500) as receiver,
    ):
        sim.add_job(str(uuid4()), duration=0, webhook_url=receiver.url)
        await wait_until(lambda: len(receiver.received) == 1)
        await sim.webhooks_settled()

        assert [d.status for d in receiver.deliveries] == [500, 500, 200]
        assert receiver.deliveries[0].body == receiver.deliveries[2].body
        assert sim.counters.webhook_attempts == 3
        assert sim.counters.webhook_failed_attempts == 2
        assert sim.counters.webhook_delivered == 1


async def test_delivery_gives_up_after_the_last_attempt() -> None:
    async with (
        RunwareSimulator(config("flat", max_attempts=3)) as sim,
        WebhookRecorder(fail_first=100, fail_status=503) as receiver,
    ):
        sim.add_job(str(uuid4()), duration=0, webhook_url=receiver.url)
        await wait_until(lambda: sim.counters.webhook_gave_up == 1)
        assert len(receiver.deliveries) == 3
        assert sim.counters.webhook_delivered == 0


async def test_an_unreachable_receiver_is_retried_then_given_up() -> None:
    async with RunwareSimulator(config("flat", max_attempts=2)) as sim:
        # Port 9 (discard) on loopback: nothing listens, so every attempt is a transport error.
        sim.add_job(str(uuid4()), duration=0, webhook_url="http://127.0.0.1:9/hook")
        await wait_until(lambda: sim.counters.webhook_gave_up == 1)
        assert sim.counters.webhook_attempts == 2
