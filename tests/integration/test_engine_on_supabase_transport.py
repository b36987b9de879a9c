"""The engine on the Supabase transport — RPC through the PostgREST stand-in, the change feed
through the Phoenix-protocol realtime stand-in — notices every pending job, whatever the
realtime connection does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory, RunningApp
from tests.projects import add_pending_clip, clips_of, new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.standins.supabase import SupabaseStandIn, running_supabase
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


@pytest.fixture
async def supabase(database_url: str) -> AsyncIterator[SupabaseStandIn]:
    async with running_supabase(database_url) as stand_in:
        yield stand_in


@pytest.fixture
async def running(
    service_env: dict[str, str], run_app: AppFactory, supabase: SupabaseStandIn
) -> AsyncIterator[RunningApp]:
    env = {k: v for k, v in service_env.items() if k != "DATABASE_URL"}
    env |= ENGINE_ENV | {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
        # Only the feed (and the sweep every (re)subscription asks for) may find new clips.
        "RECONCILER_SWEEP_ON_START": "0",
        "RECONCILER_SWEEP_INTERVAL_SECONDS": "0",
    }
    async with run_app(env) as app:
        engine = app.engine
        await wait_until(lambda: engine.feed_state == "subscribed" and engine.stats.sweeps == 1)
        yield app


async def _settles(
    db: asyncpg.Connection, simulator: RunwareSimulator, project: UUID, job: str
) -> None:
    async def settled() -> bool:
        return bool((await clips_of(db, project))[job] != "pending")

    await wait_until(settled, timeout=30)
    assert (await clips_of(db, project))[job] == simulator.truth()[job]


async def test_a_clip_added_by_the_app_is_noticed_through_realtime(
    running: RunningApp, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {})
    simulator.add_job(J.rt_1, duration=0, outcome="success")
    await add_pending_clip(db, project, J.rt_1)

    await _settles(db, simulator, project, J.rt_1)
    assert running.engine.stats.sweeps == 1  # the feed did it, not a sweep


async def test_a_dropped_connection_misses_nothing(
    running: RunningApp,
    supabase: SupabaseStandIn,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    engine = running.engine
    project = await new_project(db, {})
    simulator.add_job(J.rt_lost, duration=0, outcome="success")
    # The change happens while the connection is down: its event is lost for good.
    supabase.realtime.pause_events()
    await supabase.realtime.drop_connections()
    await add_pending_clip(db, project, J.rt_lost)
    supabase.realtime.resume()

    await wait_until(lambda: engine.feed_state == "subscribed" and engine.stats.sweeps >= 2)
    await _settles(db, simulator, project, J.rt_lost)
    assert supabase.realtime.connections_accepted >= 2


async def test_a_stale_close_after_rejoin_ends_with_the_feed_rebuilt(
    running: RunningApp,
    supabase: SupabaseStandIn,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    engine = running.engine
    joins_before = supabase.realtime.joins
    await supabase.realtime.send_stale_close()
    await wait_until(lambda: supabase.realtime.joins > joins_before)
    await wait_until(lambda: engine.feed_state == "subscribed")
    project = await new_project(db, {})
    simulator.add_job(J.rt_after_close, duration=0, outcome="success")
    await add_pending_clip(db, project, J.rt_after_close)

    await _settles(db, simulator, project, J.rt_after_close)


async def test_a_frame_that_breaks_the_client_does_not_silence_the_feed(
    running: RunningApp,
    supabase: SupabaseStandIn,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    engine = running.engine
    sweeps_before = engine.stats.sweeps
    # realtime-py's presence handling raises on this frame and its listener dies silently.
    await supabase.realtime.emit_frame("presence_state", {"someone": {"metas": [{}]}})
    await wait_until(
        lambda: engine.feed_state == "subscribed" and engine.stats.sweeps > sweeps_before
    )
    project = await new_project(db, {})
    simulator.add_job(J.rt_after_junk, duration=0, outcome="success")
    await add_pending_clip(db, project, J.rt_after_junk)

    await _settles(db, simulator, project, J.rt_after_junk)
