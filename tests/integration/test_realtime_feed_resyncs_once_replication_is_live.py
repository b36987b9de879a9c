"""SUBSCRIBED can come seconds before the server's replication is live (realtime-js #525), and
changes in between are lost. The resync that covers them waits for "Subscribed to PostgreSQL",
or for `ready_timeout` when that message never comes."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import asyncpg

from tests.realtime_harness import (
    FeedOnStandIn,
    assert_new_pending_project_hinted,
    feed_on_standin,
    subscribed,
)
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


def feed_before_ready(
    database_url: str, ready_timeout: float
) -> AbstractAsyncContextManager[FeedOnStandIn]:
    """A feed on a stand-in that holds "Subscribed to PostgreSQL" back until `send_ready()`."""
    return feed_on_standin(
        database_url, standin_settings={"announce_ready": False}, ready_timeout=ready_timeout
    )


async def test_the_resync_waits_for_the_ready_message(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with feed_before_ready(database_url, ready_timeout=3600) as (standin, feed, hints):
        await wait_until(lambda: feed.state == "subscribed")
        # Changes are delivered in order: once a new one is hinted, a resync would have been too.
        await assert_new_pending_project_hinted(db, hints)
        assert hints.resyncs == 0

        assert await standin.send_ready() == 1

        await wait_until(lambda: hints.resyncs == 1)


async def test_without_a_ready_message_the_resync_comes_after_a_while(database_url: str) -> None:
    async with feed_before_ready(database_url, ready_timeout=0.05) as (standin, feed, hints):
        await wait_until(subscribed(feed, hints, resyncs=1))

        await standin.drop_connections()

        await wait_until(subscribed(feed, hints, resyncs=2))
