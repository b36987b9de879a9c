"""A server that refuses connections is retried for as long as it takes (no giving up)."""

from __future__ import annotations

import asyncpg

from tests.projects import new_project
from tests.standins.realtime import (
    IGNORE_WEBSOCKETS_DEPRECATIONS,
    RecordingHints,
    fast_feed,
    running_feed,
    running_standin,
)
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_the_feed_keeps_retrying_until_the_server_lets_it_in(
    database_url: str, db: asyncpg.Connection
) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url, refuse_connections=True) as standin,
        running_feed(fast_feed(standin.url), hints) as feed,
    ):
        # More attempts than realtime-py's own reconnect would ever make (max_retries=5).
        await wait_until(lambda: standin.connections_refused >= 8)
        assert feed.state == "starting"
        assert hints.resyncs == 0

        standin.refuse_connections = False

        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 1)
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])


async def test_an_outage_after_subscribing_reads_as_reconnecting(database_url: str) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url) as standin,
        running_feed(fast_feed(standin.url), hints) as feed,
    ):
        await wait_until(lambda: feed.state == "subscribed")
        standin.refuse_connections = True
        await standin.drop_connections()

        await wait_until(lambda: feed.state == "reconnecting" and feed.rebuilds >= 3)

        standin.refuse_connections = False
        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 2)


async def test_a_wrong_api_key_is_never_subscribed(database_url: str) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url) as standin,
        running_feed(fast_feed(standin.url, api_key="wrong-key"), hints) as feed,
    ):
        await wait_until(lambda: standin.connections_refused >= 3)
        assert feed.state == "starting"
        assert standin.connections_accepted == 0
