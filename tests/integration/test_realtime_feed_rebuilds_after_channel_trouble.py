"""A join that is never answered (TIMED_OUT) or a server-side channel error (CHANNEL_ERROR)
ends with a new client and a working subscription."""

from __future__ import annotations

import asyncpg

from tests.projects import new_project
from tests.standins.realtime import (
    IGNORE_WEBSOCKETS_DEPRECATIONS,
    RecordingHints,
    fast_feed,
    running_feed,
    running_standin,
    subscribed_feed,
)
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_an_unanswered_join_is_retried_on_a_new_client(
    database_url: str, db: asyncpg.Connection
) -> None:
    hints = RecordingHints()
    async with (
        running_standin(database_url, answer_joins=False) as standin,
        running_feed(fast_feed(standin.url, join_timeout=1), hints) as feed,
    ):
        await wait_until(lambda: feed.rebuilds >= 1)
        assert feed.state == "starting"

        standin.answer_joins = True

        await wait_until(lambda: feed.state == "subscribed" and hints.resyncs == 1)
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])


async def test_a_channel_error_from_the_server_rebuilds(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        error = {
            "channel": "reconciler-projects",
            "extension": "postgres_changes",
            "status": "error",
            "message": "Unable to subscribe to changes with given parameters",
        }
        assert await standin.emit_frame("system", error) == 1

        await wait_until(
            lambda: feed.rebuilds == 1 and feed.state == "subscribed" and hints.resyncs == 2
        )
        project = await new_project(db, {"job": "pending"})
        await wait_until(lambda: hints.changed == [project])
