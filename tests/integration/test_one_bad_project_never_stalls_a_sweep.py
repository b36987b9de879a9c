"""I10: one project the database refuses is skipped, recorded with its reason and counted; the
drain and the sweep go on, complete, and the projects after it are reconciled.

The refusal: the app's own trigger rejects any write to one project (say, an archived one),
and a stored webhook result waits for that project's pending job. (Before v2, a clip key of
~2,700 characters did the same to our own index; such keys are now simply not tracked.) The
sweeper used to take a refusal for an outage and restart from the first project about once a
second, forever."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from reconciler.local.serving import serve
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory
from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY, PostgrestStandIn
from tests.waiting import wait_until

FIRST_PROJECT = UUID("00000000-0000-4000-8000-000000000001")  # swept first (keyset order)
DONE_URL = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/stuck.mp4"

APP_REFUSES_ONE_PROJECT = f"""
create function public.app_refuses_archived() returns trigger
language plpgsql set search_path = '' as $$
begin
    raise exception 'project % is archived', new.id;
end $$;
create trigger app_refuses_archived before update on public.projects
    for each row when (old.id = '{FIRST_PROJECT}')
    execute function public.app_refuses_archived();
"""


@pytest.fixture(params=["postgres", "supabase"])
async def engine_env(
    request: pytest.FixtureRequest, service_env: dict[str, str], database_url: str
) -> AsyncIterator[dict[str, str]]:
    env = service_env | ENGINE_ENV | {"RECONCILER_FIRST_CHECK_DELAY_SECONDS": "3600"}
    if request.param == "postgres":
        yield env
        return
    async with serve(PostgrestStandIn(database_url).app()) as rest_url:
        yield {k: v for k, v in env.items() if k != "DATABASE_URL"} | {
            "SUPABASE_URL": rest_url,
            "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
            "RECONCILER_FEED": "off",
        }


async def test_a_refused_project_is_skipped_and_the_sweep_completes(
    engine_env: dict[str, str], run_app: AppFactory, db: asyncpg.Connection
) -> None:
    await db.execute(
        "insert into public.projects (id, name, clips) values ($1, '', $2)",
        FIRST_PROJECT,
        {J.stuck: "pending"},
    )
    await db.execute("select public.reconciler_drain_changes(100, 3600, 0)")
    await db.execute(
        "insert into reconciler.parked_results (job_id, result) values ($2, $1)",
        DONE_URL,
        J.stuck,
    )
    await db.execute(APP_REFUSES_ONE_PROJECT)
    later = [await new_project(db, {J.named(f"later-{i}"): "pending"}) for i in range(3)]

    async with run_app(engine_env) as running:
        # The start-up sweep drains the outbox (the later projects), then walks every project
        # with unsettled jobs, the refused one first.
        await wait_until(lambda: running.engine.stats.sweeps >= 1)
        skipped = list(running.engine.recent_skips)
        skipped_count = running.engine.stats.projects_skipped

    tracked = await db.fetch(
        "select project_id from reconciler.jobs where job_id = any($1::text[])",
        [J.named(f"later-{i}") for i in range(3)],
    )
    assert sorted(r["project_id"] for r in tracked) == sorted(later)
    assert skipped_count >= 1
    assert skipped[0].project_id == FIRST_PROJECT
    assert "is archived" in skipped[0].reason
    stuck = await db.fetchval("select clips from public.projects where id = $1", FIRST_PROJECT)
    assert stuck == {J.stuck: "pending"}


async def test_the_drain_skips_a_refused_project_and_takes_the_rest(
    engine_env: dict[str, str], run_app: AppFactory, db: asyncpg.Connection
) -> None:
    await db.execute(
        "insert into reconciler.parked_results (job_id, result) values ($2, $1)",
        DONE_URL,
        J.stuck,
    )
    await db.execute(APP_REFUSES_ONE_PROJECT)
    # The app's insert is not refused (its trigger is on update); our write of the result is.
    await db.execute(
        "insert into public.projects (id, name, clips) values ($1, '', $2)",
        FIRST_PROJECT,
        {J.stuck: "pending"},
    )
    later = [await new_project(db, {J.named(f"later-{i}"): "pending"}) for i in range(3)]
    env = engine_env | {"RECONCILER_SWEEP_ON_START": "0", "RECONCILER_SWEEP_INTERVAL_SECONDS": "0"}

    async with run_app(env) as running:
        await wait_until(lambda: running.engine.stats.changes_drained >= 4)
        await wait_until(lambda: running.engine.stats.projects_skipped >= 1)
        skipped = list(running.engine.recent_skips)

    tracked = await db.fetch("select distinct project_id from reconciler.jobs")
    assert sorted(r["project_id"] for r in tracked) == sorted(later)
    assert skipped[0].project_id == FIRST_PROJECT
    assert "is archived" in skipped[0].reason
