"""Hazard 1: an exception in a realtime-py callback kills its listener for good. Junk events
and hints that raise are counted and skipped, and later changes are still hinted."""

from __future__ import annotations

import asyncpg

from tests.projects import new_project
from tests.realtime_harness import (
    RecordingHints,
    assert_new_pending_project_hinted,
    feed_on_standin,
)
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_junk_change_events_do_not_silence_the_feed(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with feed_on_standin(database_url) as (standin, feed, hints):
        await wait_until(lambda: feed.state == "subscribed")

        await standin.emit_change({"id": "not-a-uuid", "clips": {"j": "pending"}})
        await standin.emit_change({"clips": {"j": "pending"}}, type="INSERT")
        await standin.emit_change(None, old_record={})
        # Not even a change shape: realtime-py discards it before any callback.
        await standin.emit_frame("postgres_changes", {"ids": [1], "data": "junk"})

        await assert_new_pending_project_hinted(db, hints)
        assert feed.callback_errors == 3
        assert feed.rebuilds == 0


async def test_hints_that_raise_do_not_silence_the_feed(
    database_url: str, db: asyncpg.Connection
) -> None:
    hints = RecordingHints(fail_next=1)  # the first resync raises
    async with feed_on_standin(database_url, hints=hints) as (_, feed, _):
        await wait_until(lambda: feed.state == "subscribed" and feed.callback_errors == 1)
        hints.fail_next = 1
        lost = await new_project(db, {"job": "pending"})
        await wait_until(lambda: feed.callback_errors == 2)

        await assert_new_pending_project_hinted(db, hints)
        assert lost not in hints.changed
        assert feed.rebuilds == 0
