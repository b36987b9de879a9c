"""The soak's chaos task, cancelled while it restarts a killed replica, leaves no process behind:
the replacement belongs to `Replicas` from the moment it is spawned, so `stop()` stops it, even
in the middle of the restart."""

from __future__ import annotations

import asyncio
import random

from bench.soak import Replicas, SoakPlan, _chaos, _service_env
from reconciler.local.simulator import RunwareSimulator
from tests import process_guard
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.standins.supabase import SupabaseStandIn, running_supabase
from tests.waiting import wait_until


def _services_running() -> set[int]:
    return {p.pid for p in process_guard.descendants() if "reconciler serve" in p.command}


async def _chaos_mid_restart(
    supabase: SupabaseStandIn, replicas: Replicas
) -> tuple[asyncio.Task[int], set[int]]:
    """Start the replicas and the chaos; return once a replacement replica has been spawned
    (the chaos task is then inside `kill_and_restart`, waiting for it to become ready) with
    every service process spawned so far."""
    await replicas.start()
    originals = _services_running()
    assert len(originals) == 2
    # From now on no replica can subscribe to realtime, so none becomes ready: a restart
    # stays between spawning its replacement and the replacement being ready.
    supabase.realtime.refuse_connections = True
    plan = SoakPlan(kill_every_seconds=0, drop_realtime_every_seconds=0.01)
    chaos = asyncio.create_task(_chaos(plan, supabase, replicas, random.Random(1)))
    await wait_until(lambda: bool(_services_running() - originals), timeout=60)
    return chaos, _services_running() | originals


def _kill_what_is_left() -> None:
    """Whatever a regressed soak left behind, so that this test fails alone."""
    process_guard.kill([p for p in process_guard.descendants() if "reconciler serve" in p.command])


@IGNORE_WEBSOCKETS_DEPRECATIONS
async def test_cancelling_the_chaos_mid_restart_leaves_no_process(
    database_url: str, simulator: RunwareSimulator
) -> None:
    async with running_supabase(database_url) as supabase:
        replicas = Replicas(_service_env(supabase, simulator))
        try:
            chaos, spawned = await _chaos_mid_restart(supabase, replicas)

            chaos.cancel()
            await chaos
            await replicas.stop()

            assert replicas.kills == 1
            assert [pid for pid in spawned if process_guard.is_alive(pid)] == []
        finally:
            await replicas.stop()
            _kill_what_is_left()


@IGNORE_WEBSOCKETS_DEPRECATIONS
async def test_stopping_the_replicas_mid_restart_stops_the_replacement(
    database_url: str, simulator: RunwareSimulator
) -> None:
    async with running_supabase(database_url) as supabase:
        replicas = Replicas(_service_env(supabase, simulator))
        chaos: asyncio.Task[int] | None = None
        try:
            chaos, spawned = await _chaos_mid_restart(supabase, replicas)

            await replicas.stop()  # the chaos task is still running, inside the restart

            assert [pid for pid in spawned if process_guard.is_alive(pid)] == []
            assert not chaos.done()  # the interrupted restart is not an error
            chaos.cancel()
            await chaos
            assert replicas.kills == 1  # and nothing is restarted after stop()
            assert _services_running() == set()
        finally:
            if chaos is not None:
                chaos.cancel()
                await asyncio.wait([chaos])
            await replicas.stop()
            _kill_what_is_left()
