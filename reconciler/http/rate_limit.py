"""Per-caller rate limit for the check endpoint: every call costs Runware requests.

A token bucket per caller, decided at once (no waiting): allowed, or "retry after N seconds".
Idle callers are forgotten so memory stays bounded.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_TRACKED_CALLERS = 10_000


class KeyedRateLimiter:
    def __init__(
        self, per_minute: float, burst: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def try_acquire(self, key: str) -> float | None:
        """None when allowed; otherwise the seconds until a call would be allowed."""
        now = self._clock()
        tokens, updated = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - updated) * self._rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > MAX_TRACKED_CALLERS:
            self._buckets.popitem(last=False)
        return None if allowed else (1 - tokens) / self._rate
