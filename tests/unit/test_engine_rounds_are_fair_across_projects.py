"""A poll round takes every project's oldest due job before any project's second, and at most
`claim_per_project` of one project: a lone job is settled in the first round beside a backlog,
and the backlog is still worked through round after round."""

from __future__ import annotations

from reconciler.clips import Succeeded
from tests.fakes.engines import CHECK_POLICY, EngineWorld
from tests.job_ids import J

URL = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/lone.mp4"


async def test_a_lone_job_settles_in_the_first_round_beside_a_backlog() -> None:
    world = EngineWorld()
    engine = world.engine(claim_batch=4, claim_per_project=3)
    backlog = [J.named(f"backlog-{i}") for i in range(10)]
    busy = world.store.app.insert(dict.fromkeys(backlog, "pending"))
    await engine.drain_once()
    world.clock.advance(600)  # the backlog is long overdue
    lone = world.store.app.insert({J.lone: "pending"})
    await engine.drain_once()
    world.clock.advance(CHECK_POLICY.first_check_delay_seconds)
    world.runware.statuses = {J.lone: Succeeded(URL)}

    first = await engine.poll_once()

    assert first == 4  # three of the backlog (its share) and the lone job
    assert world.store.app.clips(lone) == {J.lone: URL}
    asked = [job for request in world.runware.requests for job in request]
    assert sum(job in backlog for job in asked) == 3
    # The backlog goes on being worked through, a share per round.
    assert [await engine.poll_once() for _ in range(4)] == [3, 3, 1, 0]
    assert world.store.app.clips(busy) == dict.fromkeys(backlog, "pending")
