"""Hazard 6: a `phx_close` for an old join marks the fresh channel CLOSED; the feed rebuilds."""

from __future__ import annotations

import asyncpg

from tests.realtime_harness import assert_new_pending_project_hinted, subscribed, subscribed_feed
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_a_stale_close_after_a_rejoin_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.drop_connections()
        await wait_until(subscribed(feed, hints, resyncs=2))

        assert await standin.send_stale_close() == 1

        await wait_until(subscribed(feed, hints, resyncs=3, rebuilds=2))
        await assert_new_pending_project_hinted(db, hints)
        assert standin.joins == 3


async def test_a_stale_close_on_a_first_subscription_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.send_stale_close()

        await wait_until(lambda: feed.rebuilds == 1 and hints.resyncs == 2)
        await wait_until(lambda: feed.state == "subscribed")
        await assert_new_pending_project_hinted(db, hints)
