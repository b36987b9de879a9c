"""A work queue keyed by project, in the manner of controller-runtime's.

A key is held once however often it is added; a key being worked on is never handed to a
second worker; a key added again while being worked on runs once more afterwards (its state
may have changed after the worker read it). No I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    pass


class _ShutDown:
    """Sentinel: each worker that receives it passes it on, so every waiting worker wakes."""


_SHUT_DOWN = _ShutDown()


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._items: asyncio.Queue[K | _ShutDown] = asyncio.Queue()
        self._queued: set[K] = set()
        self._processing: set[K] = set()
        self._dirty: set[K] = set()
        self._shut_down = False

    def __len__(self) -> int:
        """Keys waiting (not counting those being worked on)."""
        return len(self._queued)

    @property
    def in_progress(self) -> int:
        return len(self._processing)

    def add(self, key: K) -> None:
        """Non-blocking, so feeds may call it from their callbacks."""
        if self._shut_down or key in self._queued:
            return
        if key in self._processing:
            self._dirty.add(key)
            return
        self._queued.add(key)
        self._items.put_nowait(key)

    async def get(self) -> K:
        """The next key, now marked as being worked on; raises QueueShutDown when shut down."""
        item = await self._items.get()
        if isinstance(item, _ShutDown):
            self._items.put_nowait(item)
            raise QueueShutDown
        self._queued.discard(item)
        self._processing.add(item)
        return item

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._dirty.discard(key)
            self.add(key)

    def shut_down(self) -> None:
        """Stop handing out keys: waiting and later getters get QueueShutDown."""
        self._shut_down = True
        self._queued.clear()
        self._dirty.clear()
        while not self._items.empty():
            self._items.get_nowait()
        self._items.put_nowait(_SHUT_DOWN)
