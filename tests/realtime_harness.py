"""A realtime feed run against the realtime stand-in, for the feed's tests: the stand-in, a
feed with tiny waits on it, and hints that record what the feed asked for.

    async with subscribed_feed(database_url) as (standin, feed, hints):
        await standin.drop_connections()
        await wait_until(subscribed(feed, hints, resyncs=2, rebuilds=1))
        await assert_new_pending_project_hinted(db, hints)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import realtime

from reconciler.feeds.realtime import RealtimeFeed
from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.standins.realtime import RealtimeStandIn, running_standin
from tests.waiting import wait_until


@dataclass
class RecordingHints:
    """A `FeedHints` that records every hint; `fail_next` makes the next hints raise."""

    changed: list[UUID] = field(default_factory=list)
    resyncs: int = 0
    fail_next: int = 0
    history: list[str] = field(default_factory=list)  # "changed" and "resync", in call order

    def project_changed(self, project_id: UUID) -> None:
        self._maybe_fail()
        self.changed.append(project_id)
        self.history.append("changed")

    def resync(self) -> None:
        self._maybe_fail()
        self.resyncs += 1
        self.history.append("resync")

    def _maybe_fail(self) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            raise RuntimeError("hint failed on purpose")


# What the feed context managers yield.
FeedOnStandIn = tuple[RealtimeStandIn, RealtimeFeed, RecordingHints]


def fast_feed(url: str, api_key: str = SERVICE_ROLE_KEY, **overrides: Any) -> RealtimeFeed:
    """A feed whose waits are tiny, so fault tests take milliseconds."""
    settings: dict[str, Any] = {
        "initial_backoff": 0.01,
        "rebuild_backoff_cap": 0.05,
        "health_check_interval": 0.02,
        "disconnect_grace": 0.1,
        "ready_timeout": 2.0,
    }
    return RealtimeFeed(url, api_key, **(settings | overrides))


@contextlib.asynccontextmanager
async def running_feed(feed: RealtimeFeed, hints: RecordingHints) -> AsyncIterator[RealtimeFeed]:
    """Run `feed` in a task for the block, then cancel it and check it stopped cleanly."""
    task = asyncio.create_task(feed.run(hints))
    try:
        yield feed
    finally:
        task.cancel()
        # Not `await task` in suppress(CancelledError): that would also swallow a cancellation
        # of the test itself. A feed that failed (rather than stopped) fails the test.
        await asyncio.wait([task])
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error
    assert feed.state == "stopped"
    assert list(realtime_tasks()) == []


_REALTIME_PY = os.path.dirname(realtime.__file__) + os.sep


def realtime_tasks() -> Iterator[asyncio.Task[Any]]:
    """Tasks still running code from realtime-py: none may survive a stopped feed."""
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and code.co_filename.startswith(_REALTIME_PY):
            yield task


@contextlib.asynccontextmanager
async def feed_on_standin(
    database_url: str | None = None,
    *,
    standin_settings: Mapping[str, Any] | None = None,
    hints: RecordingHints | None = None,
    **feed_settings: Any,
) -> AsyncIterator[FeedOnStandIn]:
    """A stand-in (on the database, if given; `standin_settings` for its fault controls) and a
    `fast_feed` on it with `feed_settings`, running for the block and checked to stop cleanly.
    Yielded at once: the feed may not be subscribed yet."""
    hints = RecordingHints() if hints is None else hints
    async with (
        running_standin(database_url, **(standin_settings or {})) as standin,
        running_feed(fast_feed(standin.url, **feed_settings), hints) as feed,
    ):
        yield standin, feed, hints


@contextlib.asynccontextmanager
async def subscribed_feed(
    database_url: str | None = None, **feed_settings: Any
) -> AsyncIterator[FeedOnStandIn]:
    """The common start of a feed test: `feed_on_standin`, yielded once the feed is subscribed
    and has asked for its first resync."""
    async with feed_on_standin(database_url, **feed_settings) as (standin, feed, hints):
        await wait_until(subscribed(feed, hints, resyncs=1))
        yield standin, feed, hints


def subscribed(
    feed: RealtimeFeed, hints: RecordingHints, *, resyncs: int, rebuilds: int | None = None
) -> Callable[[], bool]:
    """For `wait_until`: the feed is subscribed and has asked for `resyncs` resyncs in all (and
    has rebuilt its client `rebuilds` times, if given)."""
    return lambda: (
        feed.state == "subscribed"
        and hints.resyncs == resyncs
        and (rebuilds is None or feed.rebuilds == rebuilds)
    )


async def assert_new_pending_project_hinted(db: asyncpg.Connection, hints: RecordingHints) -> None:
    """The feed is live: a project written now with a pending clip is hinted, and it is the
    only project hinted so far."""
    project = await new_project(db, {"job": "pending"})
    await wait_until(lambda: hints.changed == [project])
