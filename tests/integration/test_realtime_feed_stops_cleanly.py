"""Cancelling `run()` closes the socket, leaves no realtime-py task behind, and reads "stopped"."""

from __future__ import annotations

import asyncio
import contextlib

from tests.realtime_harness import RecordingHints, fast_feed, realtime_tasks
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS, running_standin
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def cancel(task: asyncio.Task[None]) -> None:
    """Cancel the feed's task, as the service's shutdown does, and wait for it to end."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_cancelling_a_subscribed_feed_stops_it() -> None:
    async with running_standin() as standin:
        feed = fast_feed(standin.url)
        task = asyncio.create_task(feed.run(RecordingHints()))
        await wait_until(lambda: feed.state == "subscribed")

        await cancel(task)

        assert task.cancelled()
        assert feed.state == "stopped"
        assert list(realtime_tasks()) == []
        await wait_until(lambda: standin.open_connections == 0)


async def test_cancelling_a_feed_that_is_backing_off_stops_it() -> None:
    async with running_standin(refuse_connections=True) as standin:
        # A long backoff: cancellation must not wait for it to end.
        feed = fast_feed(standin.url, initial_backoff=60.0, rebuild_backoff_cap=60.0)
        task = asyncio.create_task(feed.run(RecordingHints()))
        await wait_until(lambda: feed.rebuilds == 1)

        await cancel(task)

        assert feed.state == "stopped"
        assert list(realtime_tasks()) == []


async def test_cancelling_while_a_join_is_unanswered_stops_it() -> None:
    async with running_standin(answer_joins=False) as standin:
        feed = fast_feed(standin.url)
        task = asyncio.create_task(feed.run(RecordingHints()))
        await wait_until(lambda: standin.open_connections == 1)

        await cancel(task)

        assert feed.state == "stopped"
        assert list(realtime_tasks()) == []
        await wait_until(lambda: standin.open_connections == 0)
