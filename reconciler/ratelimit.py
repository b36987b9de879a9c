"""Token buckets: at most `rate` acquisitions per second on average, bursts up to `burst`.

The refill arithmetic lives once, in `Bucket` (pure: no clock, no waiting). Two ways of using
it are built on top:

- `TokenBucket`: one bucket, `await acquire()` waits until a token is there (the Runware
  client's request rate);
- `KeyedRateLimiter`: a bucket per key, `try_acquire(key)` decides at once — allowed, or the
  seconds until it would be (the check endpoint's per-caller limit); `wait_for(key)` asks the
  same without taking (failed authentications per client address, charged only on failure).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MAX_TRACKED_CALLERS = 10_000


@dataclass
class Bucket:
    """Tokens as of `updated`; they grow at `rate` per second up to `burst`."""

    rate: float
    burst: float
    tokens: float
    updated: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> Bucket:
        if rate <= 0:
            raise ValueError("rate must be positive")
        return cls(rate, burst, burst, now)

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, now: float) -> float | None:
        """None when a token is there; otherwise the seconds until one will be (nothing taken)."""
        self.refill(now)
        return None if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def try_take(self, now: float) -> float | None:
        """Take a token: None when taken; otherwise the seconds until one will be there."""
        self.refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


class TokenBucket:
    """One bucket; `acquire()` waits its turn. `burst` defaults to one second's worth (>= 1)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._bucket = Bucket.full(rate, burst if burst is not None else max(1.0, rate), clock())
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        # The lock makes waiters queue in order instead of all waking for the same token.
        async with self._lock:
            while (wait := self._bucket.try_take(self._clock())) is not None:
                await self._sleep(wait)


class KeyedRateLimiter:
    """A bucket per key, decided at once (no waiting). Idle keys are forgotten, oldest first,
    beyond `MAX_TRACKED_CALLERS`, so memory stays bounded."""

    def __init__(
        self, per_minute: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        self._rate = per_minute / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def try_acquire(self, key: str) -> float | None:
        """None when allowed; otherwise the seconds until a call would be allowed."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = Bucket.full(self._rate, self._burst, now)
        wait = bucket.try_take(now)
        # Re-inserted at the end: the order is least recently seen first.
        self._buckets[key] = bucket
        while len(self._buckets) > MAX_TRACKED_CALLERS:
            self._buckets.popitem(last=False)
        return wait

    def wait_for(self, key: str) -> float | None:
        """What `try_acquire(key)` would answer, without taking anything: a check before the
        work whose outcome decides whether to charge (a failed authentication)."""
        bucket = self._buckets.get(key)
        return None if bucket is None else bucket.wait(self._clock())
