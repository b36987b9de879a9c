"""Commands that work on the database need only its settings: no RECONCILER_ADMIN_TOKEN (an
HTTP credential) anywhere, and a Runware key only where Runware is asked (check, sweep)."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import new_project


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args)
    return done.returncode, done.stdout, done.stderr


async def test_status_and_resync_need_only_database_url(
    database_url: str, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.named("only-db"): "pending"})
    env = {"DATABASE_URL": database_url}

    for args in (("status",), ("status", "--project", str(project)), ("resync",)):
        code, _, err = await _run(env, *args)
        assert code == 0, (args, err)


async def test_check_and_sweep_need_the_database_and_runware_only(
    database_url: str, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    job = J.named("only-db-and-runware")
    simulator.add_job(job, duration=0, outcome="success")
    project = await new_project(db, {job: "pending"})
    env = {
        "DATABASE_URL": database_url,
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
    }

    for args in (("check", str(project)), ("sweep",)):
        code, _, err = await _run(env, *args)
        assert code == 0, (args, err)


async def test_check_without_the_runware_key_names_it(database_url: str) -> None:
    code, _, err = await _run(
        {"DATABASE_URL": database_url}, "check", "00000000-0000-0000-0000-000000000000"
    )
    assert code == 2
    assert "RUNWARE_API_KEY" in err
