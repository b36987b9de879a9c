"""Events that arrive faster than they are handled overflow a bounded queue; the ones dropped
are covered by a resync asked for once the queue has drained."""

from __future__ import annotations

from uuid import uuid4

from tests.realtime_harness import subscribed_feed
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS


async def test_dropped_events_end_in_a_resync() -> None:
    async with subscribed_feed(queue_size=2) as (standin, feed, hints):
        # Sent without yielding to the loop, they reach the client as one burst.
        for _ in range(100):
            await standin.emit_change({"id": str(uuid4()), "clips": {"job": "pending"}})

        await wait_until(lambda: len(hints.changed) + feed.events_dropped == 100)
        await wait_until(lambda: hints.history[-1] == "resync")
        assert feed.events_dropped > 0
        assert feed.events_received == 100
        assert hints.resyncs >= 2
