"""The one fake clock of the test suite: time moves only when a test advances it.

Implements `reconciler.clock.Clock` (`now`, `sleep`) and is callable, so it also stands in for
the `clock=` callables of the rate limiters, the JWKS cache and the metrics cache.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from tests.waiting import let_others_run


class FakeClock:
    """A manual clock. `sleep` waits until `advance` moves time past its deadline; with
    `advance_on_sleep`, `sleep` moves time forward itself and returns at once (for code whose
    waiting is the point of the test, such as a token bucket pacing requests)."""

    def __init__(self, start: float = 1000.0, *, advance_on_sleep: bool = False) -> None:
        self._now = start
        self._advance_on_sleep = advance_on_sleep
        # (deadline, tie-breaker, waiter): the heap's order is the order sleepers wake in.
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self.slept: list[float] = []

    def now(self) -> float:
        return self._now

    def __call__(self) -> float:
        return self._now

    @property
    def sleepers(self) -> int:
        """Sleeps waiting for time to move (what a test waits for before it advances)."""
        return sum(1 for _, _, waiter in self._sleepers if not waiter.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleep whose deadline has come."""
        if seconds < 0:
            raise ValueError("a clock never goes back")
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, waiter = heapq.heappop(self._sleepers)
            if not waiter.done():
                waiter.set_result(None)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self._advance_on_sleep:
            self.advance(max(seconds, 0.0))
            await let_others_run()
            return
        if seconds <= 0:
            await let_others_run()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), waiter))
        await waiter
