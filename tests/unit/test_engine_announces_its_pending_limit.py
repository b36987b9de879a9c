"""The service writes RECONCILER_MAX_PENDING_PER_PROJECT where the SQL core reads it, when it
starts, and tries again while the database is unreachable: every path that tracks jobs (the
drain, a webhook's drain, sweeps, the resync, a user's check) then applies the same limit."""

from __future__ import annotations

from reconciler.ports import StoreRejected
from tests.fakes.engines import EngineWorld
from tests.job_ids import J
from tests.waiting import wait_until


async def test_the_limit_is_written_at_start_and_applied_to_the_apps_writes() -> None:
    world = EngineWorld()
    world.store.outage = "starting"
    engine = world.engine(max_pending_per_project=2)
    engine.start()
    try:
        await wait_until(lambda: world.store.calls["set_tracking_limits"] >= 1)
        assert world.store.state.max_pending_per_project == 1000  # not written yet
        world.store.outage = None
        world.clock.advance(world.policy.poll_interval_seconds * 2)  # the drainer's next look
        await wait_until(lambda: world.store.state.max_pending_per_project == 2)

        keys = sorted([J.limit_a, J.limit_b, J.limit_c])
        project = world.store.app.insert(dict.fromkeys(keys, "pending"))
        await engine.drain_once()
    finally:
        await engine.stop()

    assert set(await world.inspect.job_states(keys)) == set(keys[:2])
    assert list(await world.inspect.untracked_reasons(project)) == [keys[2]]


async def test_a_limit_the_database_refuses_never_holds_back_the_drain() -> None:
    world = EngineWorld()
    refusals = 0

    async def refuse(max_pending_per_project: int) -> int:
        nonlocal refusals
        refusals += 1
        raise StoreRejected("function reconciler_set_tracking_limits does not exist")

    world.store.set_tracking_limits = refuse  # type: ignore[method-assign]
    engine = world.engine()
    world.store.app.insert({J.drained_anyway: "pending"})
    engine.start()
    try:
        await wait_until(lambda: world.store.calls["drain_changes"] >= 1)
        await wait_until(lambda: bool(world.store.state.jobs))
        world.clock.advance(world.policy.poll_interval_seconds * 2)
        await wait_until(lambda: refusals >= 2)  # tried again at the next interval
    finally:
        await engine.stop()

    assert engine.stats.errors >= 2
