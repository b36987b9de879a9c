"""A dropped socket ends with a new client, a new subscription, a resync, and live hints."""

from __future__ import annotations

import asyncpg
import pytest

from tests.projects import add_pending_clip, new_project
from tests.realtime_harness import (
    assert_new_pending_project_hinted,
    feed_on_standin,
    subscribed,
    subscribed_feed,
)
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


@pytest.mark.parametrize("abrupt", [True, False], ids=["no-close-frame", "error-close"])
async def test_the_feed_rebuilds_resyncs_and_hints_again(
    database_url: str, db: asyncpg.Connection, abrupt: bool
) -> None:
    async with subscribed_feed(database_url) as (standin, feed, hints):
        assert await standin.drop_connections(abrupt=abrupt) == 1

        await wait_until(subscribed(feed, hints, resyncs=2, rebuilds=1))
        project = await new_project(db, {})
        await add_pending_clip(db, project, "job-after-drop")
        await wait_until(lambda: hints.changed == [project])
        assert standin.connections_accepted == 2
        assert standin.open_connections == 1


async def test_changes_lost_during_an_outage_are_covered_by_the_resync(
    database_url: str, db: asyncpg.Connection
) -> None:
    """The server has no replay: what was committed while the feed was away never arrives."""
    async with subscribed_feed(database_url) as (standin, feed, hints):
        standin.pause_events()
        missed = await new_project(db, {"job-missed": "pending"})
        await wait_until(lambda: standin.events_lost == 1)

        await standin.drop_connections()
        standin.resume()

        await wait_until(subscribed(feed, hints, resyncs=2))
        assert missed not in hints.changed  # only the sweep that resync() asks for finds it


async def test_repeated_drops_are_survived(database_url: str, db: asyncpg.Connection) -> None:
    async with feed_on_standin(database_url) as (standin, feed, hints):
        for nth in (1, 2, 3):
            await wait_until(subscribed(feed, hints, resyncs=nth))
            await standin.drop_connections()
        await wait_until(subscribed(feed, hints, resyncs=4))
        await assert_new_pending_project_hinted(db, hints)
        assert feed.rebuilds == 3
