"""A join that is never answered (TIMED_OUT) or a server-side channel error (CHANNEL_ERROR)
ends with a new client and a working subscription."""

from __future__ import annotations

import asyncpg

from tests.realtime_harness import (
    assert_new_pending_project_hinted,
    feed_on_standin,
    subscribed,
    subscribed_feed,
)
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_an_unanswered_join_is_retried_on_a_new_client(
    database_url: str, db: asyncpg.Connection
) -> None:
    joins_unanswered = feed_on_standin(
        database_url, standin_settings={"answer_joins": False}, join_timeout=1
    )
    async with joins_unanswered as (standin, feed, hints):
        await wait_until(lambda: feed.rebuilds >= 1)
        assert feed.state == "starting"

        standin.answer_joins = True

        await wait_until(subscribed(feed, hints, resyncs=1))
        await assert_new_pending_project_hinted(db, hints)


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

        await wait_until(subscribed(feed, hints, resyncs=2, rebuilds=1))
        await assert_new_pending_project_hinted(db, hints)
