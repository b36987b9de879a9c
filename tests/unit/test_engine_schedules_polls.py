"""When the engine polls a job: first after the first-check delay, then with exponential
backoff (equal jitter, capped) between polls, never before it is due; due jobs in one batched
request, a job held by two projects asked about once."""

from __future__ import annotations

from tests.fakes.engines import CHECK_POLICY, ENGINE_POLICY, EngineWorld
from tests.job_ids import J


async def test_a_new_job_is_first_checked_after_the_first_check_delay() -> None:
    world = EngineWorld()
    engine = world.engine()
    world.store.app.insert({J.j1: "pending"})
    await engine.drain_once()

    world.clock.advance(CHECK_POLICY.first_check_delay_seconds - 0.1)
    assert await engine.poll_once() == 0
    assert world.runware.requests == []

    world.clock.advance(0.1)
    assert await engine.poll_once() == 1
    assert world.runware.requests == [[J.j1]]


async def test_polls_back_off_exponentially_up_to_the_cap() -> None:
    world = EngineWorld()
    engine = world.engine()
    project = world.store.app.insert({J.j1: "pending"})
    await engine.drain_once()
    world.clock.advance(CHECK_POLICY.first_check_delay_seconds)
    backoff = ENGINE_POLICY.poll.backoff

    delays = []
    for attempt in range(8):
        assert await engine.poll_once() == 1
        state = (await world.inspect.job_states([J.j1]))[J.j1]
        assert state.attempts == attempt + 1
        delay = state.next_check_in_seconds
        ceiling = backoff.ceiling(attempt)
        assert ceiling / 2 <= delay <= ceiling
        delays.append(delay)
        # Not a moment before it is due, then at once.
        world.clock.advance(delay - 0.01)
        assert await engine.poll_once() == 0
        world.clock.advance(0.02)

    assert backoff.ceiling(7) == ENGINE_POLICY.poll.backoff_cap_seconds  # the cap was reached
    assert delays[-1] > delays[0] * 10
    assert len(world.runware.requests) == 8
    assert world.store.app.clips(project) == {J.j1: "pending"}


async def test_due_jobs_go_in_one_request_and_a_shared_job_is_asked_once() -> None:
    world = EngineWorld()
    engine = world.engine()
    first = world.store.app.insert({J.a: "pending", J.shared: "pending"})
    second = world.store.app.insert({J.b: "pending", J.shared: "pending"})
    await engine.drain_once()
    world.clock.advance(CHECK_POLICY.first_check_delay_seconds)

    assert await engine.poll_once() == 4  # four (project, job) pairs

    assert len(world.runware.requests) == 1
    assert sorted(world.runware.requests[0]) == sorted([J.a, J.b, J.shared])
    states = await world.inspect.job_states([J.a, J.b])
    assert {s.project_id for s in states.values()} == {first, second}
    assert all(s.attempts == 1 for s in states.values())
