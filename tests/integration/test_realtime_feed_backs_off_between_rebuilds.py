"""Rebuilds wait an exponential, capped, jittered delay; a subscription that lasted resets it."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

from tests.realtime_harness import FeedOnStandIn, feed_on_standin, subscribed
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import let_others_run, wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS

BASE = 0.01
CAP = 0.08


class RecordingSleep:
    """The feed's backoff sleep: records each delay, then yields at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await let_others_run()


def ceiling(failures: int) -> float:
    return min(CAP, BASE * 2.0 ** (failures - 1))


def backing_off(
    sleep: RecordingSleep, **settings: Any
) -> AbstractAsyncContextManager[FeedOnStandIn]:
    """A feed on a stand-in that refuses connections, backing off from BASE up to CAP."""
    return feed_on_standin(
        standin_settings={"refuse_connections": True},
        initial_backoff=BASE,
        rebuild_backoff_cap=CAP,
        sleep=sleep,
        **settings,
    )


async def test_failures_in_a_row_back_off_exponentially_up_to_the_cap() -> None:
    sleep = RecordingSleep()
    async with backing_off(sleep):
        await wait_until(lambda: len(sleep.delays) >= 8)

    for failures, delay in enumerate(sleep.delays[:8], start=1):
        assert ceiling(failures) / 2 <= delay <= ceiling(failures)
    assert max(sleep.delays) <= CAP


async def test_a_subscription_that_lasted_resets_the_backoff() -> None:
    sleep = RecordingSleep()
    async with backing_off(sleep, healthy_after=0) as (standin, feed, hints):
        await wait_until(lambda: len(sleep.delays) >= 5)
        standin.refuse_connections = False
        await wait_until(lambda: feed.state == "subscribed")
        failed_before = len(sleep.delays)

        await standin.drop_connections()

        await wait_until(subscribed(feed, hints, resyncs=2))
    assert sleep.delays[failed_before - 1] >= ceiling(failed_before) / 2
    assert sleep.delays[failed_before] <= BASE
