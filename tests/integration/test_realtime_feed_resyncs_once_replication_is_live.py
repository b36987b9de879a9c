"""SUBSCRIBED can come seconds before the server's replication is live (realtime-js #525), and
changes in between are lost. The resync that covers them waits for "Subscribed to PostgreSQL",
or for `ready_timeout` when that message never comes."""

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


async def test_the_resync_waits_for_the_ready_message(
    database_url: str, db: asyncpg.Connection
) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url, announce_ready=False) as standin,
        running_feed(fast_feed(standin.url, ready_timeout=3600), hints) as feed,
    ):
        await wait_until(lambda: feed.state == "subscribed")
        # Changes are delivered in order: once this one is hinted, a resync would have been too.
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])
        assert hints.resyncs == 0

        assert await standin.send_ready() == 1

        await wait_until(lambda: hints.resyncs == 1)


async def test_without_a_ready_message_the_resync_comes_after_a_while(database_url: str) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url, announce_ready=False) as standin,
        running_feed(fast_feed(standin.url, ready_timeout=0.05), hints) as feed,
    ):
        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 1)

        await standin.drop_connections()

        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 2)
