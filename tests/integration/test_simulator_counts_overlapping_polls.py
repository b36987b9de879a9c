"""A poll for a task that arrives while another poll for it is in service is counted."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient
from tests.waiting import wait_until

API_KEY = "sim-key"


async def test_two_pollers_on_one_task_overlap() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        shared, alone = str(uuid4()), str(uuid4())
        sim.add_job(shared, duration=3600)
        sim.add_job(alone, duration=3600)
        # Two clients stand for two replicas, each with its own connection pool.
        async with RunwareClient(sim.url, API_KEY) as one, RunwareClient(sim.url, API_KEY) as two:
            sim.hold_requests()
            polls = asyncio.gather(one.get_statuses([shared]), two.get_statuses([shared, alone]))
            await wait_until(lambda: sim.state.requests_in_flight == 2)
            sim.release_requests()
            await polls

        assert sim.counters.overlapping_polls == 1
        assert sim.counters.polls_by_task == {shared: 2, alone: 1}


async def test_polls_one_after_another_do_not_overlap() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        task_uuid = str(uuid4())
        sim.add_job(task_uuid, duration=3600)
        async with RunwareClient(sim.url, API_KEY) as client:
            for _ in range(3):
                await client.get_statuses([task_uuid])

        assert sim.counters.overlapping_polls == 0
        assert sim.counters.polls_by_task[task_uuid] == 3


async def test_concurrent_polls_of_different_tasks_do_not_overlap() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key=API_KEY)) as sim:
        first, second = str(uuid4()), str(uuid4())
        async with RunwareClient(sim.url, API_KEY, batch_size=1) as client:
            sim.hold_requests()
            polls = asyncio.ensure_future(client.get_statuses([first, second]))
            await wait_until(lambda: sim.state.requests_in_flight == 2)
            sim.release_requests()
            await polls

        assert sim.counters.overlapping_polls == 0
        assert sim.counters.get_response_tasks == 2
