"""httpx and httpcore log every request at INFO; the reconciler keeps them below WARNING
quiet unless RECONCILER_LOG_LEVEL=debug, so a `check` does not print a line per Runware call."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import new_project


async def _check_stderr(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection, level: str
) -> str:
    job = J.named(f"quiet-http-{level}")
    simulator.add_job(job, duration=3600)
    project = await new_project(db, {job: "pending"})
    env = {
        "DATABASE_URL": database_url,
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
        "RECONCILER_LOG_LEVEL": level,
    }
    done = await asyncio.to_thread(run_reconciler, env, "check", str(project))
    assert done.returncode == 0, done.stderr
    return done.stderr


async def test_no_request_lines_at_info(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    stderr = await _check_stderr(database_url, simulator, db, "info")
    assert "HTTP Request" not in stderr


async def test_request_lines_at_debug(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    stderr = await _check_stderr(database_url, simulator, db, "debug")
    assert "HTTP Request: POST" in stderr
