"""Waiting for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], bool],
    # A `timeout` argument (not asyncio.timeout around the call) keeps call sites one line.
    timeout: float = 10.0,  # noqa: ASYNC109
    interval: float = 0.01,
) -> None:
    """Return as soon as `predicate()` is true; fail with TimeoutError after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
