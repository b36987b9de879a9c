"""`reconciler demo --archive` runs the whole flow with archiving on, with no account: every
completed clip ends pointing at the local Storage stand-in."""

from __future__ import annotations

import asyncio

from tests.cli import run_reconciler


async def test_demo_with_archiving_archives_every_completed_clip() -> None:
    result = await asyncio.to_thread(
        run_reconciler, {}, "demo", "--clips", "3", "--archive", timeout=180
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "archiving on" in result.stdout
    assert "2 of 2 completed clips now point at Storage" in result.stdout
