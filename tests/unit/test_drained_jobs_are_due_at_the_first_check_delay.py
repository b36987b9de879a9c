"""A job the app just wrote is first checked after the first-check delay, as documented: the
outbox drain no longer adds a random share of RECONCILER_SWEEP_SPREAD_SECONDS (with the delay
at 0.1 s a lone job whose webhook never came waited 25-50 s). The spread stays for jobs a
sweep or resync discovers at once, after a restart."""

from __future__ import annotations

from tests.fakes.engines import CHECK_POLICY, EngineWorld
from tests.job_ids import J

SPREAD = 60.0
DELAY = CHECK_POLICY.first_check_delay_seconds


async def test_a_job_the_app_wrote_is_due_at_the_first_check_delay() -> None:
    world = EngineWorld()
    engine = world.engine(sweep_spread_seconds=SPREAD)
    jobs = [J.named(f"fresh-{i}") for i in range(20)]
    world.store.app.insert(dict.fromkeys(jobs, "pending"))

    await engine.drain_once()

    due_in = {s.next_check_in_seconds for s in (await world.inspect.job_states(jobs)).values()}
    assert due_in == {DELAY}


async def test_jobs_a_resync_discovers_are_still_spread() -> None:
    world = EngineWorld()
    engine = world.engine(sweep_spread_seconds=SPREAD)
    jobs = [J.named(f"found-{i}") for i in range(20)]
    world.store.app.insert(dict.fromkeys(jobs, "pending"), triggers=False)  # no outbox row

    await engine.resync_once()

    due_in = [s.next_check_in_seconds for s in (await world.inspect.job_states(jobs)).values()]
    assert len(due_in) == len(jobs)
    assert all(DELAY <= d <= DELAY + SPREAD for d in due_in)
    assert max(due_in) - min(due_in) > SPREAD / 4  # spread, not bunched
