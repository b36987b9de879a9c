"""Hazard 6: a `phx_close` for an old join marks the fresh channel CLOSED; the feed rebuilds."""

from __future__ import annotations

import asyncpg

from tests.projects import new_project
from tests.standins.realtime import (
    IGNORE_WEBSOCKETS_DEPRECATIONS,
    subscribed_feed,
)
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_a_stale_close_after_a_rejoin_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.drop_connections()
        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 2)

        assert await standin.send_stale_close() == 1

        await wait_until(
            lambda: feed.rebuilds == 2 and feed.state == "subscribed" and hints.resyncs == 3
        )
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])
        assert standin.joins == 3


async def test_a_stale_close_on_a_first_subscription_is_survived(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.send_stale_close()

        await wait_until(lambda: feed.rebuilds == 1 and hints.resyncs == 2)
        await wait_until(lambda: feed.state == "subscribed")
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])
