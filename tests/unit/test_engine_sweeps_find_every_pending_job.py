"""Sweeps (I5, I10): the drain takes what the app changed batch after batch; the sweep
reconciles every project with unsettled jobs page by page; the resync pages through every
project, pausing between pages, and finds writes the trigger never saw; a project the
database refuses is skipped with its reason and the rest go on."""

from __future__ import annotations

import asyncio

from tests.fakes.engines import EngineWorld
from tests.job_ids import J
from tests.waiting import wait_until

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"


async def test_the_drain_takes_every_change_batch_after_batch() -> None:
    world = EngineWorld()
    engine = world.engine(drain_batch=2)
    projects = [world.store.app.insert({J.named(f"j{i}"): "pending"}) for i in range(5)]

    assert await engine.drain_once() == 5

    assert world.store.calls["drain_changes"] == 3  # 2 + 2 + 1
    assert engine.stats.changes_drained == 5
    states = await world.inspect.job_states([J.named(f"j{i}") for i in range(5)])
    assert {s.project_id for s in states.values()} == set(projects)
    assert await engine.drain_once() == 0


async def test_the_sweep_reconciles_every_project_with_unsettled_jobs_page_by_page() -> None:
    world = EngineWorld()
    engine = world.engine(sweep_page_size=2)
    projects = [world.store.app.insert({J.named(f"j{i}"): "pending"}) for i in range(3)]
    await engine.drain_once()
    # Each project gets a clip the trigger never saw, whose webhook came and was parked.
    for i, project in enumerate(projects):
        world.store.app.update(
            project, {J.named(f"j{i}"): "pending", J.named(f"late{i}"): "pending"}, triggers=False
        )
        assert (await world.store.ingest_result(J.named(f"late{i}"), URL, None, 0)).kind == "parked"
    pages: list[int] = []

    assert await engine.sweep_once(on_page=pages.append) == 3

    assert pages == [2, 1]
    for i, project in enumerate(projects):
        assert world.store.app.clips(project) == {
            J.named(f"j{i}"): "pending",
            J.named(f"late{i}"): URL,
        }
    assert engine.stats.sweeps == 1


async def test_the_resync_pages_through_projects_pausing_on_the_clock() -> None:
    world = EngineWorld()
    engine = world.engine(resync_page_size=2)
    unseen = [
        world.store.app.insert({J.named(f"u{i}"): "pending"}, triggers=False) for i in range(3)
    ]
    world.store.app.insert({J.done: URL}, triggers=False)

    pages: list[int] = []
    resync = asyncio.create_task(engine.resync_once(pages.append, pause_seconds=5))
    for scanned_so_far in ([2], [2, 2]):  # a full page: maybe more after it, after a pause
        await wait_until(lambda: world.clock.sleepers == 1)
        assert pages == scanned_so_far
        world.clock.advance(5)

    assert await resync == 4
    assert pages == [2, 2, 0]
    states = await world.inspect.job_states([J.u0, J.u1, J.u2])
    assert {s.project_id for s in states.values()} == set(unseen)
    assert engine.stats.resyncs == 1


async def test_a_refused_project_is_skipped_and_the_sweep_goes_on() -> None:
    world = EngineWorld()
    engine = world.engine(sweep_page_size=1)
    bad = world.store.app.insert({J.stuck: "pending"})
    good = world.store.app.insert({J.fine: "pending"})
    await engine.drain_once()
    world.store.refuse_writes(bad, "project is archived")
    for project, job in ((bad, J.late_bad), (good, J.late_good)):
        await world.store.ingest_result(job, URL, None, 0)  # parked: nobody holds it yet
        world.store.app.merge(project, {job: "pending"})  # the app's write, then the sweep

    assert await engine.sweep_once() == 2

    assert [(s.project_id, s.reason) for s in engine.recent_skips][-1] == (
        bad,
        "project is archived",
    )
    assert world.store.app.clips(bad) == {J.stuck: "pending", J.late_bad: "pending"}
    assert world.store.app.clips(good) == {J.fine: "pending", J.late_good: URL}
