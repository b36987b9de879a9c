"""No more than `max_in_flight` requests are ever open at once, across concurrent callers."""

from __future__ import annotations

import asyncio
import json
from uuid import uuid4

import httpx

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient
from tests.waiting import let_others_run, wait_until


async def test_concurrency_reaches_but_never_exceeds_the_bound() -> None:
    bound = 3
    open_now = 0
    most = 0
    full = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        if open_now == bound:
            full.set()
        # Hold every request until the bound has been reached once: without a bound, all the
        # batches would pile in here together.
        await asyncio.wait_for(full.wait(), timeout=10)
        await let_others_run()
        open_now -= 1
        tasks = json.loads(request.content)
        return httpx.Response(200, json={"data": [{**t, "status": "processing"} for t in tasks]})

    transport = httpx.MockTransport(handler)
    client = RunwareClient(
        "https://api.test/v1", "key", transport=transport, batch_size=2, max_in_flight=bound
    )
    uuids = [str(uuid4()) for _ in range(20)]
    async with client:
        # Two callers at once share one bound.
        first, second = await asyncio.gather(
            client.get_statuses(uuids[:10]), client.get_statuses(uuids[10:])
        )
    assert len(first) + len(second) == 20
    assert most == bound


async def test_simulator_sees_at_most_the_bound() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key="key")) as sim:
        uuids = [str(uuid4()) for _ in range(12)]
        sim.hold_requests()
        async with RunwareClient(sim.url, "key", batch_size=2, max_in_flight=2) as client:
            polling = asyncio.create_task(client.get_statuses(uuids))
            await wait_until(lambda: sim.state.requests_in_flight == 2)
            sim.release_requests()
            statuses = await polling
        assert len(statuses) == 12
        assert sim.counters.requests_total == 6
        assert sim.counters.max_requests_in_flight == 2
