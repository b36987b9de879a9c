"""The soak's chaos task, cancelled while it restarts a killed replica, leaves no process behind:
the replacement belongs to `Replicas` from the moment it is spawned, so `stop()` stops it."""

from __future__ import annotations

import asyncio
import random

from bench.soak import Replicas, SoakPlan, _chaos, _service_env
from reconciler.simulator import RunwareSimulator
from tests import process_guard
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.standins.supabase import running_supabase
from tests.waiting import wait_until


def _services_running() -> set[int]:
    return {p.pid for p in process_guard.descendants() if "reconciler serve" in p.command}


@IGNORE_WEBSOCKETS_DEPRECATIONS
async def test_cancelling_the_chaos_mid_restart_leaves_no_process(
    database_url: str, simulator: RunwareSimulator
) -> None:
    async with running_supabase(database_url) as supabase:
        replicas = Replicas(_service_env(supabase, simulator))
        try:
            await replicas.start()
            originals = _services_running()
            assert len(originals) == 2
            # From now on no replica can subscribe to realtime, so none becomes ready: a
            # restart stays between spawning its replacement and the replacement being ready.
            supabase.realtime.refuse_connections = True
            plan = SoakPlan(kill_every_seconds=0, drop_realtime_every_seconds=0.01)
            chaos = asyncio.create_task(_chaos(plan, supabase, replicas, random.Random(1)))

            await wait_until(lambda: bool(_services_running() - originals), timeout=60)
            spawned = _services_running() | originals
            chaos.cancel()
            await chaos
            await replicas.stop()

            assert replicas.kills == 1
            assert [pid for pid in spawned if process_guard.is_alive(pid)] == []
        finally:
            await replicas.stop()
            # Whatever this test left (if the soak regressed), so it fails alone.
            process_guard.kill(
                [p for p in process_guard.descendants() if "reconciler serve" in p.command]
            )
