"""I10: one project the database refuses is skipped, recorded with its reason and counted; the
sweep goes on, completes, and the projects after it are tracked.

The refusal here is the one met in the field: a clip key of 2,700 incompressible characters
fits the app's own write but not an index entry of ours (SQLSTATE 54000). The sweeper used to
take it for an outage and restart from the first project about once a second, forever."""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from reconciler.serving import serve
from tests.conftest import ENGINE_ENV, AppFactory
from tests.projects import new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY, PostgrestStandIn
from tests.waiting import wait_until

FIRST_PROJECT = UUID("00000000-0000-4000-8000-000000000001")  # swept first (keyset order)


def _incompressible_key(length: int) -> str:
    # Repetitive keys are compressed inside index entries and would fit.
    rng = random.Random(2700)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(length))


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
    long_key = _incompressible_key(2700)
    await db.execute(
        "insert into public.projects (id, name, clips) values ($1, '', $2)",
        FIRST_PROJECT,
        {long_key: "pending"},
    )
    later = [await new_project(db, {f"later-{i}": "pending"}) for i in range(3)]

    async with run_app(engine_env) as running:
        await wait_until(lambda: running.engine.stats.sweeps >= 1, timeout=30)
        skipped = list(running.engine.recent_skips)
        skipped_count = running.engine.stats.projects_skipped

    tracked = await db.fetch(
        "select project_id from reconciler.jobs where job_id like 'later-%' order by job_id"
    )
    assert sorted(r["project_id"] for r in tracked) == sorted(later)
    assert skipped_count >= 1
    assert skipped[0].project_id == FIRST_PROJECT
    assert "index row size" in skipped[0].reason
