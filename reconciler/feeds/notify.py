"""The Postgres transport's change feed: LISTEN reconciler_clips (the migration's notify-only
trigger sends a project id when a new pending clip appears).

Supervised like the realtime feed: a dropped or silently dead connection is noticed (health
query) and replaced with backoff, and every (re)connect asks for a sweep, because NOTIFYs sent
while nobody listened are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import asyncpg

from reconciler.ports import FeedHints, FeedState

log = logging.getLogger(__name__)

CHANNEL = "reconciler_clips"


class NotifyFeed:
    def __init__(
        self,
        database_url: str,
        *,
        health_check_seconds: float = 5.0,
        backoff_base_seconds: float = 0.5,
        backoff_cap_seconds: float = 30.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._database_url = database_url
        self._health_check = health_check_seconds
        self._backoff_base = backoff_base_seconds
        self._backoff_cap = backoff_cap_seconds
        self._sleep = sleep
        self._state: FeedState = "starting"
        self.connects = 0
        # Connections lost and replaced; the same name as the realtime feed's, for metrics.
        self.rebuilds = 0
        self.events_received = 0

    @property
    def state(self) -> FeedState:
        return self._state

    async def run(self, hints: FeedHints) -> None:
        backoff = self._backoff_base
        try:
            while True:
                try:
                    await self._listen(hints)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                    log.warning("change feed (LISTEN) lost: %s: %s", type(e).__name__, e)
                if self._state == "subscribed":
                    backoff = self._backoff_base  # it was healthy: start backing off afresh
                self._state = "reconnecting"
                self.rebuilds += 1
                await self._sleep(backoff * (0.5 + random.random() / 2))
                backoff = min(self._backoff_cap, backoff * 2)
        finally:
            self._state = "stopped"

    async def _listen(self, hints: FeedHints) -> None:
        conn: asyncpg.Connection = await asyncio.wait_for(
            asyncpg.connect(self._database_url), self._health_check * 2
        )
        lost = asyncio.Event()

        def on_notify(_: Any, __: int, ___: str, payload: object) -> None:
            # Runs in asyncpg's reader: must never raise, must not block.
            try:
                self.events_received += 1
                hints.project_changed(UUID(str(payload)))
            except Exception:
                log.exception("change feed: bad notification %r", payload)

        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, on_notify)
            self.connects += 1
            self._state = "subscribed"
            hints.resync()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), self._health_check)
                if not lost.is_set():
                    # A half-open TCP connection never terminates by itself; ask something.
                    await asyncio.wait_for(conn.fetchval("select 1"), self._health_check)
            raise ConnectionError("connection terminated")
        finally:
            conn.terminate()
