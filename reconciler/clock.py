"""Time as the engine sees it: a reading that only moves forward, and waiting on it.

The engine's own timing (lease renewal, pauses between resync pages, poll and sweep intervals)
goes through a `Clock`, so tests can drive it with a clock they advance by hand instead of
sleeping. Times stored with jobs (due, leased, settled) are the database's, not this clock's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a scale that never goes back; only differences mean anything."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once `seconds` have passed on this clock."""
        ...


class SystemClock:
    """The process's monotonic clock and asyncio's sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


async def wait_or_timeout(clock: Clock, event: asyncio.Event, seconds: float | None) -> None:
    """Return when `event` is set or `seconds` have passed on `clock`, whichever comes first
    (None: only the event)."""
    if seconds is None:
        await event.wait()
        return
    waiter = asyncio.ensure_future(event.wait())
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait((waiter, timer), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, timer):
            task.cancel()
        await asyncio.gather(waiter, timer, return_exceptions=True)
