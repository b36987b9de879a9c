"""While `reconciler migrate` or `uninstall` waits for its lock on `projects` (behind a long app
transaction), the app's own reads and writes of `projects` — which queue behind that waiting
request — wait at most about the lock timeout: the step gives up the wait, rolls back, says on
the console who holds the lock, and tries again. Once the long transaction ends, the step
completes.

The app's statements run with a 10 s statement_timeout only as a fail-safe: they must finish,
not be cancelled (without the lock timeout they wait for the long transaction, i.e. forever)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from uuid import uuid4

import asyncpg
import pytest

from tests.cli import clean_environment, finish_command, start_command
from tests.databases import PgCluster
from tests.waiting import wait_until

LOCK_TIMEOUT_SECONDS = "1"
APP_STATEMENT_TIMEOUT = "10s"

# What each step waits for, and the long app transaction that makes it wait:
# - migrate's CREATE TRIGGER asks for SHARE ROW EXCLUSIVE: a writer's open transaction (ROW
#   EXCLUSIVE) holds it up, and every app write then queues behind the request;
# - uninstall's DROP TRIGGER asks for ACCESS EXCLUSIVE: even a reader holds it up, and every
#   app read and write then queues behind the request.
CASES = {
    "migrate": ("update public.projects set name = 'long' where id = $1", ["migrate"]),
    "uninstall": ("select count(*) from public.projects where id = $1", ["uninstall", "--yes"]),
}


async def _waiting_for_a_lock(admin: asyncpg.Connection) -> bool:
    return bool(
        await admin.fetchval(
            "select exists (select 1 from pg_stat_activity where wait_event_type = 'Lock'"
            " and datname = current_database())"
        )
    )


@pytest.mark.parametrize("step", CASES)
async def test_app_statements_never_wait_behind_a_step_waiting_for_its_lock(
    pg_cluster: PgCluster, step: str
) -> None:
    holder_sql, command = CASES[step]
    if step == "migrate":
        url = await pg_cluster.create_baseline_database()
    else:
        url = await pg_cluster.create_database()
    long_project, app_project = uuid4(), uuid4()
    admin = await asyncpg.connect(url)
    long_tx = await asyncpg.connect(url)
    app = await asyncpg.connect(url, server_settings={"statement_timeout": APP_STATEMENT_TIMEOUT})
    process = None
    try:
        await admin.execute(
            "insert into public.projects (id) values ($1), ($2)", long_project, app_project
        )
        await long_tx.execute("begin")
        await long_tx.execute(holder_sql, long_project)
        holder_pid = long_tx.get_server_pid()

        process = start_command(
            [sys.executable, "-m", "reconciler", *command],
            clean_environment(
                {
                    "DATABASE_URL": url,
                    "RECONCILER_MIGRATE_LOCK_TIMEOUT_SECONDS": LOCK_TIMEOUT_SECONDS,
                    "COLUMNS": "200",
                }
            ),
        )
        for _ in range(2):
            # The step's lock request is queued behind the long transaction: now the app.
            await wait_until(lambda: _waiting_for_a_lock(admin), timeout=60)
            await app.execute("update public.projects set name = 'app' where id = $1", app_project)
            assert await app.fetchval("select count(*) from public.projects") == 2

        await long_tx.execute("rollback")
        result = await asyncio.to_thread(finish_command, process, 120)
        process = None
    finally:
        if process is not None:  # the test failed: the command goes with it
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(finish_command, process, 1)
        for conn in (app, long_tx, admin):
            await conn.close()

    assert result.returncode == 0, result.stderr
    waits = [line for line in result.stdout.splitlines() if "for a lock" in line]
    assert waits, result.stdout
    assert f"pid {holder_pid} " in waits[0]
    assert "retrying in" in waits[0]
    conn = await asyncpg.connect(url)
    try:
        installed = await conn.fetchval(
            "select exists (select 1 from pg_trigger where tgname = 'reconciler_clips_changed')"
        )
        assert installed == (step == "migrate")
    finally:
        await conn.close()
