"""Leases (I6): a job one replica is polling is not claimed by another; a lease left behind by
a replica that died expires and the job is taken over; a long round keeps renewing its leases;
stopping hands them back."""

from __future__ import annotations

import asyncio

from tests.fakes.engines import CHECK_POLICY, ENGINE_POLICY, EngineWorld
from tests.job_ids import J
from tests.waiting import wait_until

LEASE = ENGINE_POLICY.lease_seconds


async def _due_job(world: EngineWorld) -> None:
    world.store.app.insert({J.j1: "pending"})
    await world.engine().drain_once()
    world.clock.advance(CHECK_POLICY.first_check_delay_seconds)


async def test_a_job_one_replica_polls_is_not_claimed_by_another() -> None:
    world = EngineWorld()
    await _due_job(world)
    first, second = world.engine("replica-a"), world.engine("replica-b")
    world.runware.gate.clear()

    round_a = asyncio.create_task(first.poll_once())
    await wait_until(lambda: world.runware.waiting == 1)  # replica-a holds the lease, asking
    assert await second.poll_once() == 0

    world.runware.gate.set()
    assert await round_a == 1
    assert world.runware.requests == [[J.j1]]


async def test_a_dead_replicas_lease_expires_and_the_job_is_taken_over() -> None:
    world = EngineWorld()
    await _due_job(world)
    dying, survivor = world.engine("dying"), world.engine("survivor")
    world.runware.gate.clear()
    round_of_the_dead = asyncio.create_task(dying.poll_once())
    await wait_until(lambda: world.runware.waiting == 1)
    round_of_the_dead.cancel()  # killed mid-round: the lease stays behind
    await asyncio.gather(round_of_the_dead, return_exceptions=True)
    world.runware.gate.set()

    world.clock.advance(LEASE - 0.1)
    assert await survivor.poll_once() == 0
    world.clock.advance(0.1)
    assert await survivor.poll_once() == 1
    state = (await world.inspect.job_states([J.j1]))[J.j1]
    assert (state.attempts, state.lease_owner) == (1, None)


async def test_a_long_round_renews_its_leases() -> None:
    world = EngineWorld()
    await _due_job(world)
    slow, other = world.engine("slow"), world.engine("other")
    world.runware.gate.clear()
    long_round = asyncio.create_task(slow.poll_once())
    await wait_until(lambda: world.runware.waiting == 1 and world.clock.sleepers == 1)

    for renewal in range(1, 5):  # well past the first lease's expiry
        world.clock.advance(LEASE / 3)
        await wait_until(lambda: world.store.calls["renew_leases"] == renewal)  # noqa: B023
        state = (await world.inspect.job_states([J.j1]))[J.j1]
        assert state.lease_owner == "slow"
        assert state.next_check_in_seconds <= 0  # due, yet held
        assert await other.poll_once() == 0
        await wait_until(lambda: world.clock.sleepers == 1)

    world.runware.gate.set()
    assert await long_round == 1
    assert (await world.inspect.job_states([J.j1]))[J.j1].lease_owner is None
    assert slow.stats.lease_renewal_failures == 0


async def test_a_renewal_that_fails_is_tried_again() -> None:
    world = EngineWorld()
    await _due_job(world)
    engine = world.engine()
    world.runware.gate.clear()
    long_round = asyncio.create_task(engine.poll_once())
    await wait_until(lambda: world.runware.waiting == 1 and world.clock.sleepers == 1)

    world.store.outage = "connection refused"
    world.clock.advance(LEASE / 3)
    await wait_until(lambda: engine.stats.lease_renewal_failures == 1)
    world.store.outage = None
    await wait_until(lambda: world.clock.sleepers == 1)
    world.clock.advance(LEASE / 3)
    await wait_until(lambda: world.store.calls["renew_leases"] == 2)

    world.runware.gate.set()
    assert await long_round == 1
    assert engine.stats.lease_renewal_failures == 1


async def test_stopping_hands_the_leases_back() -> None:
    world = EngineWorld()
    await _due_job(world)
    leaving, other = world.engine("leaving"), world.engine("other")
    await world.store.claim_due_jobs(leaving.owner, 10, LEASE)  # as a round in progress

    await leaving.stop()

    assert await other.poll_once() == 1
