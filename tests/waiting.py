"""Waiting for a condition with a deadline, instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    # A `timeout` argument (not asyncio.timeout around the call) keeps call sites one line.
    # Generous: the deadline only bounds a failure, a condition met early returns early, and a
    # loaded CI machine can take several seconds for what takes milliseconds here.
    timeout: float = 30.0,  # noqa: ASYNC109
    interval: float = 0.01,
) -> None:
    """Return as soon as `predicate()` is true; fail with TimeoutError after `timeout` seconds.

    The predicate may be a coroutine function (e.g. one that asks a server)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """`wait_until` for code that runs outside an event loop (the process guard, at the end of
    a session): True as soon as `predicate()` holds, False once `timeout` seconds have passed
    (the caller decides whether that is a failure)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


async def let_others_run() -> None:
    """One turn of the event loop: every task that is ready runs up to its next await. For
    fakes of a sleep that must not wait, and for showing that something did NOT happen once
    the tasks that could do it have run (a positive condition is waited for with
    `wait_until`)."""
    await asyncio.sleep(0)
