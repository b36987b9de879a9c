"""The engine waits on the clock it is given: its poll loop runs again when that clock has
moved, not when real time has passed — which is what lets unit tests skip the waiting."""

from __future__ import annotations

import asyncio

from reconciler.clock import wait_or_timeout
from tests.fake_clock import FakeClock
from tests.fakes.engines import EngineWorld
from tests.job_ids import J
from tests.waiting import let_others_run, wait_until

HOUR = 3600.0


async def test_a_wait_ends_when_the_event_is_set() -> None:
    clock, event = FakeClock(), asyncio.Event()
    waiting = asyncio.create_task(wait_or_timeout(clock, event, 10))
    await wait_until(lambda: clock.sleepers == 1)

    event.set()
    await waiting

    assert clock.sleepers == 0  # the timer went with it


async def test_a_wait_ends_when_its_time_has_passed_on_the_clock() -> None:
    clock, event = FakeClock(), asyncio.Event()
    waiting = asyncio.create_task(wait_or_timeout(clock, event, 10))
    await wait_until(lambda: clock.sleepers == 1)

    clock.advance(9.9)
    await let_others_run()
    assert not waiting.done()
    clock.advance(0.1)
    await waiting


async def test_a_wait_without_a_timeout_needs_the_event() -> None:
    clock, event = FakeClock(), asyncio.Event()
    waiting = asyncio.create_task(wait_or_timeout(clock, event, None))
    await let_others_run()

    clock.advance(10**6)
    await let_others_run()
    assert not waiting.done()
    event.set()
    await waiting


async def test_the_poll_loop_runs_on_the_injected_clock() -> None:
    world = EngineWorld()
    world.store.app.insert({J.j1: "pending"})
    # An hour between rounds: on real time the test would never see a second one.
    engine = world.engine(poll_interval_seconds=HOUR)
    engine.start()
    try:
        # Started: the outbox drained, a first (empty) poll round, then waiting on the clock.
        await wait_until(lambda: engine.stats.changes_drained == 1)
        await wait_until(lambda: world.store.calls["claim_due_jobs"] >= 1)
        await wait_until(lambda: world.clock.sleepers >= 2)  # the poller and the drainer
        assert world.runware.requests == []

        world.clock.advance(HOUR * 1.25)  # past the jittered interval, at once

        await wait_until(lambda: world.runware.requests == [[J.j1]])
    finally:
        await engine.stop()
