"""Webhook faults: drop, duplicate, delay, reorder and early delivery, reproducible by seed."""

from __future__ import annotations

import json
from uuid import UUID

from reconciler.local.simulator import (
    Counters,
    RunwareSimulator,
    SimulatorConfig,
    WebhookFaults,
    WebhookRecorder,
    WebhookRetry,
)
from reconciler.runware.client import RunwareClient
from tests.waiting import wait_until

API_KEY = "sim-key"


def task(n: int) -> str:
    return str(UUID(int=n, version=4))


def config(faults: WebhookFaults, seed: int = 5) -> SimulatorConfig:
    return SimulatorConfig(
        api_key=API_KEY, seed=seed, webhooks=faults, webhook_retry=WebhookRetry.fast()
    )


async def finish_jobs(sim: RunwareSimulator, url: str, count: int) -> None:
    for n in range(count):
        sim.add_job(task(n), duration=0, webhook_url=url)
    await sim.webhooks_settled()


async def test_dropped_webhooks_never_arrive() -> None:
    async with (
        RunwareSimulator(config(WebhookFaults(shape="flat", drop=1.0))) as sim,
        WebhookRecorder() as receiver,
    ):
        await finish_jobs(sim, receiver.url, 5)
        assert receiver.deliveries == []
        assert sim.counters.webhook_dropped == 5
        assert sim.counters.webhook_attempts == 0
        # Polling still tells the truth: that is how the reconciler recovers.
        assert set(sim.truth().values()) != {"pending"}


async def test_duplicated_webhooks_arrive_twice() -> None:
    async with (
        RunwareSimulator(config(WebhookFaults(shape="flat", duplicate=1.0))) as sim,
        WebhookRecorder() as receiver,
    ):
        await finish_jobs(sim, receiver.url, 3)
        bodies = sorted(json.dumps(body, sort_keys=True) for body in receiver.received)
        assert len(bodies) == 6
        assert bodies[0::2] == bodies[1::2]
        assert sim.counters.webhook_duplicated == 3


async def run_mixed_faults(seed: int) -> tuple[Counters, list[str]]:
    async with (
        RunwareSimulator(config(WebhookFaults(shape="flat", drop=0.3, duplicate=0.3), seed)) as sim,
        WebhookRecorder() as receiver,
    ):
        await finish_jobs(sim, receiver.url, 30)
        arrived = sorted(body["taskUUID"] for body in receiver.received)
        return sim.counters, arrived


async def test_a_fixed_seed_reproduces_the_same_faults() -> None:
    first, arrived_first = await run_mixed_faults(seed=42)
    second, arrived_second = await run_mixed_faults(seed=42)

    assert first == second
    assert arrived_first == arrived_second
    assert 0 < first.webhook_dropped < 30
    assert 0 < first.webhook_duplicated < 30
    assert len(arrived_first) == 30 - first.webhook_dropped + first.webhook_duplicated


async def test_delayed_webhooks_still_arrive() -> None:
    faults = WebhookFaults(shape="flat", delay=1.0, delay_seconds=0.05)
    async with RunwareSimulator(config(faults)) as sim, WebhookRecorder() as receiver:
        await finish_jobs(sim, receiver.url, 2)
        assert len(receiver.received) == 2
        assert sim.counters.webhook_delayed == 2


async def test_a_reordered_webhook_arrives_after_the_next_one() -> None:
    async with (
        RunwareSimulator(config(WebhookFaults(shape="flat", reorder=1.0))) as sim,
        WebhookRecorder() as receiver,
    ):
        sim.add_job(task(1), duration=0, webhook_url=receiver.url)
        await wait_until(lambda: sim.counters.webhook_reordered == 1)
        assert receiver.deliveries == []

        sim.config.webhooks.reorder = 0.0
        sim.add_job(task(2), duration=0, webhook_url=receiver.url)
        await wait_until(lambda: len(receiver.received) == 2)
        assert [body["taskUUID"] for body in receiver.received] == [task(2), task(1)]


async def test_a_held_webhook_is_released_when_nothing_follows() -> None:
    faults = WebhookFaults(shape="flat", reorder=1.0, reorder_hold_seconds=0.05)
    async with RunwareSimulator(config(faults)) as sim, WebhookRecorder() as receiver:
        sim.add_job(task(1), duration=0, webhook_url=receiver.url)
        await wait_until(lambda: len(receiver.received) == 1)


async def test_an_early_webhook_arrives_before_the_submit_is_acknowledged() -> None:
    async with (
        RunwareSimulator(config(WebhookFaults(shape="flat", early=1.0))) as sim,
        WebhookRecorder() as receiver,
    ):
        async with RunwareClient(sim.url, API_KEY) as client:
            await client.submit_video(task(7), webhook_url=receiver.url)
            # No waiting: the delivery happened while the submit was being answered.
            assert [body["taskUUID"] for body in receiver.received] == [task(7)]
        assert sim.counters.webhook_early == 1
        assert sim.truth()[task(7)] != "pending"
