"""Outstanding work as the database sees it, read at scrape time but at most every few seconds.

Scrapes come from outside (every Prometheus replica, a curious operator): a short cache keeps
them from turning into database load, and one lock keeps concurrent scrapes to one query. When
the database does not answer, the last values stay and the failure is counted instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from reconciler.ports import PendingStats, StoreRejected, StoreUnavailable

log = logging.getLogger(__name__)


class PendingStatsSource(Protocol):
    """The one `Store` method this needs."""

    async def pending_stats(self) -> PendingStats: ...


class PendingStatsCache:
    def __init__(
        self,
        store: PendingStatsSource,
        *,
        max_age_seconds: float = 5.0,
        timeout_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._max_age = max_age_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._asked_at: float | None = None
        self._lock = asyncio.Lock()
        self.last: PendingStats | None = None
        self.errors = 0

    async def refresh(self) -> PendingStats | None:
        """The latest values: fresh if the cache is older than its max age, else cached."""
        async with self._lock:
            now = self._clock()
            if self._asked_at is not None and now - self._asked_at < self._max_age:
                return self.last
            # Stamped before asking, so a database that fails is also asked only once per
            # max age rather than on every scrape.
            self._asked_at = now
            try:
                self.last = await asyncio.wait_for(self._store.pending_stats(), self._timeout)
            except (StoreUnavailable, StoreRejected, TimeoutError) as error:
                self.errors += 1
                log.warning(
                    "metrics: could not read pending jobs, keeping the last values: %s", error
                )
            return self.last
