"""Anything raised inside realtime-py's listener task ends it for good while the client still
reports `is_connected`: no event, no close, no state change arrives any more. The feed notices
the finished task and rebuilds."""

from __future__ import annotations

import asyncpg

from tests.realtime_harness import assert_new_pending_project_hinted, subscribed, subscribed_feed
from tests.waiting import wait_until


async def test_a_frame_realtime_py_chokes_on_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        # A presence meta without `phx_ref` passes validation, then raises KeyError in
        # realtime-py's presence bookkeeping, which runs whether or not presence is used.
        assert await standin.emit_frame("presence_state", {"someone": {"metas": [{}]}}) == 1

        await wait_until(subscribed(feed, hints, resyncs=2, rebuilds=1))
        await assert_new_pending_project_hinted(db, hints)


async def test_a_drop_under_warnings_as_errors_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    """realtime-py reads the deprecated `ConnectionClosed.code` when a socket drops; with
    warnings as errors (this suite's setting) the warning kills the listener instead."""
    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.drop_connections()

        await wait_until(subscribed(feed, hints, resyncs=2, rebuilds=1))
        await assert_new_pending_project_hinted(db, hints)
