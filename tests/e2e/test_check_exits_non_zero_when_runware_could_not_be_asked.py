"""`reconciler check` exits 1 when a job could not be checked for our own reasons (Runware
refused the key, Runware unreachable), with one `error:` line naming why: scripts and CI see
it. A job that Runware says failed is not such a failure."""

from __future__ import annotations

import asyncio
import socket

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import new_project


async def _check(env: dict[str, str], project: object) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, "check", str(project))
    return done.returncode, done.stdout, done.stderr


def _env(database_url: str, api_url: str, api_key: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "RUNWARE_API_KEY": api_key,
        "RUNWARE_API_URL": api_url,
        "RECONCILER_RUNWARE_MAX_RETRIES": "0",
    }


async def test_a_refused_key_exits_1(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    job = J.named("refused-key")
    simulator.add_job(job, duration=0, outcome="success")
    project = await new_project(db, {job: "pending"})

    code, _, err = await _check(
        _env(database_url, simulator.url, "not-the-simulators-key"), project
    )

    assert code == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("error: 1 job(s) could not be checked with Runware")


async def test_an_unreachable_runware_exits_1(database_url: str, db: asyncpg.Connection) -> None:
    project = await new_project(db, {J.named("unreachable"): "pending"})
    # Bound but never listening: every connection to it is refused at once.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        code, _, err = await _check(
            _env(database_url, f"http://127.0.0.1:{port}/v1", "any-key"), project
        )

    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: 1 job(s) could not be checked")


async def test_a_job_that_failed_at_runware_exits_0(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    job = J.named("failed-at-runware")
    simulator.add_job(job, duration=0, outcome="error")
    project = await new_project(db, {job: "pending"})

    code, _, err = await _check(
        _env(database_url, simulator.url, simulator.config.api_key), project
    )

    assert code == 0, err
