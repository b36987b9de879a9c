"""The command line as users run it: check (table and --json), sweep, migrate."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.migrations import migration_files
from tests.cli import run_reconciler
from tests.databases import PgCluster
from tests.job_ids import J
from tests.projects import clips_of, new_project


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args)
    return done.returncode, done.stdout, done.stderr


async def test_check_prints_a_table_and_json(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    simulator.add_job(J.cli_ok, duration=0, outcome="success")
    project = await new_project(db, {J.cli_ok: "pending", J.cli_old: "failed"})

    code, table, _ = await _run(service_env, "check", str(project))
    json_code, raw, _ = await _run(service_env, "check", str(project), "--json")

    assert code == json_code == 0
    assert J.cli_ok[:8] in table  # a narrow terminal may fold the rest
    assert "completed" in table
    assert "2 clips: 1 completed, 0 pending, 1 failed" in table
    body = json.loads(raw)
    assert body["success"] is True
    assert body["clips"] == {J.cli_ok: simulator.truth()[J.cli_ok], J.cli_old: "failed"}


async def test_check_unknown_project_exits_1(service_env: dict[str, str]) -> None:
    code, _, err = await _run(service_env, "check", "00000000-0000-0000-0000-000000000000")
    assert code == 1
    assert "not found" in err


async def test_sweep_settles_what_is_due_now(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    projects = []
    for p in range(3):
        jobs = [J.named(f"sw-{p}-{i}") for i in range(4)]
        for job in jobs:
            simulator.add_job(job, duration=0, outcome="success")
        projects.append(await new_project(db, dict.fromkeys(jobs, "pending")))
    simulator.add_job(J.sw_slow, duration=3600)
    projects.append(await new_project(db, {J.sw_slow: "pending"}))

    code, out, err = await _run(service_env, "sweep")

    assert code == 0, err
    assert "Swept 4 projects" in out
    assert "12 clips settled" in out
    truth = simulator.truth()
    for project in projects:
        clips = await clips_of(db, project)
        assert clips == {job: truth[job] for job in clips}


async def test_migrate_applies_to_a_fresh_database_twice(pg_cluster: PgCluster) -> None:
    """A fresh database gets the install file (every migration recorded as applied) and the
    back-fill; the second run has nothing to do."""
    url = await pg_cluster.create_baseline_database()

    first = await _run({"DATABASE_URL": url}, "migrate")
    second = await _run({"DATABASE_URL": url}, "migrate")

    assert first[0] == second[0] == 0
    assert first[1].splitlines() == [
        f"installed install.sql (covers {len(migration_files())} migration files)",
        "back-filled pending clips: scanned 0 projects",
    ]
    assert second[1].strip() == "already up to date"
    conn = await asyncpg.connect(url)
    try:
        assert (
            await conn.fetchval("select count(*) from pg_namespace where nspname='reconciler'") == 1
        )
    finally:
        await conn.close()


async def test_migrate_without_database_url_names_it() -> None:
    code, _, err = await _run({}, "migrate")
    assert code == 2
    assert err.strip() == "error: DATABASE_URL: is required to apply the migrations"
