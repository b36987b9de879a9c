"""A server that refuses connections is retried for as long as it takes (no giving up)."""

from __future__ import annotations

import asyncpg

from tests.realtime_harness import assert_new_pending_project_hinted, feed_on_standin, subscribed
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_the_feed_keeps_retrying_until_the_server_lets_it_in(
    database_url: str, db: asyncpg.Connection
) -> None:
    refusing = feed_on_standin(database_url, standin_settings={"refuse_connections": True})
    async with refusing as (standin, feed, hints):
        # More attempts than realtime-py's own reconnect would ever make (max_retries=5).
        await wait_until(lambda: standin.connections_refused >= 8)
        assert feed.state == "starting"
        assert hints.resyncs == 0

        standin.refuse_connections = False

        await wait_until(subscribed(feed, hints, resyncs=1))
        await assert_new_pending_project_hinted(db, hints)


async def test_an_outage_after_subscribing_reads_as_reconnecting(database_url: str) -> None:
    async with feed_on_standin(database_url) as (standin, feed, hints):
        await wait_until(lambda: feed.state == "subscribed")
        standin.refuse_connections = True
        await standin.drop_connections()

        await wait_until(lambda: feed.state == "reconnecting" and feed.rebuilds >= 3)

        standin.refuse_connections = False
        await wait_until(subscribed(feed, hints, resyncs=2))


async def test_a_wrong_api_key_is_never_subscribed(database_url: str) -> None:
    async with feed_on_standin(database_url, api_key="wrong-key") as (standin, feed, _):
        await wait_until(lambda: standin.connections_refused >= 3)
        assert feed.state == "starting"
        assert standin.connections_accepted == 0
