"""What a poll writes: Runware's result, or "failed" with the reason once a job is still
working past the give-up age — never because our own checks failed (I11)."""

from __future__ import annotations

from reconciler.clips import CheckError, Failed, Succeeded, UnknownTask
from tests.fakes.engines import CHECK_POLICY, ENGINE_POLICY, EngineWorld
from tests.job_ids import J

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"
GIVE_UP = ENGINE_POLICY.poll.give_up_after_seconds


async def test_runwares_results_are_written() -> None:
    world = EngineWorld()
    engine = world.engine()
    project = world.store.app.insert({J.ok: "pending", J.bad: "pending", J.busy: "pending"})
    await engine.drain_once()
    world.runware.statuses = {J.ok: Succeeded(URL), J.bad: Failed("providerError", "no luck")}
    world.clock.advance(CHECK_POLICY.first_check_delay_seconds)

    await engine.poll_once()

    assert world.store.app.clips(project) == {J.ok: URL, J.bad: "failed", J.busy: "pending"}
    states = await world.inspect.job_states([J.bad, J.busy])
    assert (states[J.bad].settled, states[J.bad].last_error) == (True, "providerError: no luck")
    assert not states[J.busy].settled
    assert engine.stats.results_written == 2


async def test_a_job_still_working_past_the_give_up_age_fails_with_the_reason() -> None:
    world = EngineWorld()
    engine = world.engine()
    project = world.store.app.insert({J.slow: "pending"})
    await engine.drain_once()

    world.clock.advance(GIVE_UP - 1)
    await engine.poll_once()
    assert world.store.app.clips(project) == {J.slow: "pending"}

    world.clock.advance(ENGINE_POLICY.poll.backoff_cap_seconds)  # due again, now past the age
    await engine.poll_once()

    assert world.store.app.clips(project) == {J.slow: "failed"}
    state = (await world.inspect.job_states([J.slow]))[J.slow]
    age = GIVE_UP - 1 + ENGINE_POLICY.poll.backoff_cap_seconds
    assert (state.settled, state.last_error) == (
        True,
        f"gave up after {age:.0f} s without a result",
    )
    assert engine.stats.gave_up == 1


async def test_our_own_failed_checks_never_fail_a_clip() -> None:
    world = EngineWorld()
    engine = world.engine()
    project = world.store.app.insert({J.j1: "pending"})
    await engine.drain_once()
    world.runware.statuses = {J.j1: CheckError("Runware unreachable")}

    world.clock.advance(GIVE_UP * 2)
    await engine.poll_once()

    assert world.store.app.clips(project) == {J.j1: "pending"}
    state = (await world.inspect.job_states([J.j1]))[J.j1]
    assert (state.settled, state.last_error) == (False, "Runware unreachable")
    assert engine.check_trouble == "Runware unreachable"
    assert engine.stats.gave_up == 0


async def test_an_unknown_task_fails_only_after_the_grace_period() -> None:
    world = EngineWorld()
    engine = world.engine()
    project = world.store.app.insert({J.lost: "pending"})
    await engine.drain_once()
    world.runware.statuses = {J.lost: UnknownTask("taskNotFound", "no such task")}
    grace = CHECK_POLICY.unknown_task_grace_seconds

    world.clock.advance(grace - 1)
    await engine.poll_once()
    assert world.store.app.clips(project) == {J.lost: "pending"}

    world.clock.advance(ENGINE_POLICY.poll.backoff_cap_seconds)
    await engine.poll_once()
    assert world.store.app.clips(project) == {J.lost: "failed"}
