"""After each sweep the engine forgets what is past retention: settled jobs and parked results
(reconciler_purge) and finished archive rows (reconciler_purge_archive, issue 18 item 15),
each a batch of `purge_batch` per sweep."""

from __future__ import annotations

from tests.fakes.engines import EngineWorld
from tests.waiting import wait_until


async def test_each_sweep_also_purges_finished_archive_rows() -> None:
    world = EngineWorld()
    engine = world.engine(sweep_on_start=True)
    engine.start()
    try:
        await wait_until(lambda: world.store.calls["purge_archive"] == 1)
    finally:
        await engine.stop()

    assert world.store.calls["purge"] == 1
