"""A simulator left while it holds requests in service (`hold_requests`, never released: a
test that failed before its `release_requests`) answers them and stops, instead of its
shutdown waiting for them forever."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from reconciler.clips import TaskStatus
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient
from tests.waiting import wait_until

API_KEY = "sim-key"


async def test_leaving_the_simulator_with_requests_held_answers_them() -> None:
    task_uuid = str(uuid4())
    sim = RunwareSimulator(SimulatorConfig(api_key=API_KEY))
    clients: list[RunwareClient] = []
    polls: list[asyncio.Task[dict[str, TaskStatus]]] = []

    async def use_simulator() -> None:
        async with sim:
            sim.add_job(task_uuid, duration=3600)
            sim.hold_requests()
            clients.append(RunwareClient(sim.url, API_KEY))
            polls.append(asyncio.create_task(clients[0].get_statuses([task_uuid])))
            await wait_until(lambda: sim.state.requests_in_flight == 1)
        # Left normally, with the poll still held in service.

    using = asyncio.create_task(use_simulator())
    try:
        await wait_until(using.done)  # bounds only a failure: the shutdown waited for the poll

        await using
        [poll] = polls
        assert task_uuid in await poll
        assert sim.state.requests_in_flight == 0
    finally:
        sim.release_requests()
        using.cancel()
        await asyncio.wait([using, *polls])
        for client in clients:
            await client.aclose()
