"""Ids are there to be copied (into `status --project`, `check`, the admin search): on a
terminal far narrower than a table, `reconciler status`, `status --project` and `check` still
print every project and job id whole, on one line."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.ports import PollOutcome
from reconciler.store.postgres import connect_postgres_store
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import tracked_project

NARROW = 50  # columns


async def _run(env: dict[str, str], *args: str) -> str:
    done = await asyncio.to_thread(run_reconciler, env, *args, columns=NARROW)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_every_id_is_printed_whole_on_a_narrow_terminal(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    project = await tracked_project(db, {J.narrow_stuck: "pending", J.narrow_bad: "pending"})
    store = await connect_postgres_store(database_url)
    try:
        await store.finish_round(
            "seeding",
            [
                PollOutcome(project, J.narrow_stuck, None, "Runware: still queued", 60),
                PollOutcome(project, J.narrow_bad, "failed", "Runware: content moderation", 0),
            ],
        )
    finally:
        await store.close()

    overview = await _run(service_env, "status")
    one_project = await _run(service_env, "status", "--project", str(project))
    checked = await _run(service_env, "check", str(project))

    for shown in (overview, one_project, checked):
        assert J.narrow_stuck in shown
        assert J.narrow_bad in shown
    assert str(project) in overview
