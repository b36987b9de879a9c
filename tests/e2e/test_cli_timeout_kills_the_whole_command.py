"""A `reconciler` command run by a test (tests/cli.py) that overruns its timeout is killed
with everything it started: a server it spawned (a demo's PostgreSQL, say) is not left behind
for the session guard to find."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from tests import process_guard
from tests.cli import clean_environment, finish_command, start_command
from tests.waiting import wait_until

# Starts a grandchild that would run for ten minutes, says its pid, and waits for it.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
print(child.pid, flush=True)
child.wait()
"""


async def test_a_command_past_its_timeout_is_killed_with_its_children() -> None:
    process = start_command([sys.executable, "-c", PARENT], clean_environment({}))
    assert process.stdout is not None
    grandchild = int(await asyncio.to_thread(process.stdout.readline))
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            # The grandchild exists: expire at once rather than wait for any clock.
            await asyncio.to_thread(finish_command, process, 0)

        assert not process_guard.is_alive(process.pid)
        await wait_until(lambda: not process_guard.is_alive(grandchild))
    finally:
        process_guard.kill(
            [p for p in process_guard.descendants() if p.pid in (process.pid, grandchild)]
        )
