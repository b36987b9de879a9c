"""Migrations are append-only: a database on the released v0.1 migration, holding state of every
kind, upgrades with `reconciler migrate` and then converges.

State loaded under v0.1: pending jobs tracked and not, a leased job (its replica "crashed"), a
parked webhook result, a settled job, a job id held by two projects (v0.1 tracked it for one of
them only and left the other pending forever), and a clip key too long for v2's job key."""

from __future__ import annotations

import asyncio
import json
import random
import string
from uuid import UUID

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.migrations import apply_migrations, migration_files
from tests.databases import PgCluster
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory
from tests.waiting import wait_until

RELEASED = "20261124000000_clip_reconciler.sql"
URL_DONE = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/done.mp4"
P1 = UUID("00000000-0000-4000-8000-000000000001")
P2 = UUID("00000000-0000-4000-8000-000000000002")
P3 = UUID("00000000-0000-4000-8000-000000000003")
P4 = UUID("00000000-0000-4000-8000-000000000004")


@pytest.fixture
async def released_db(pg_cluster: PgCluster) -> str:
    """A database with Supabase's baseline and only the released migration file applied."""
    url = await pg_cluster.create_baseline_database()
    [released] = [f for f in migration_files() if f.name == RELEASED]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(released.read_text())
    finally:
        await conn.close()
    return url


async def _load_v01_state(conn: asyncpg.Connection, long_key: str) -> None:
    await conn.execute(
        """
        insert into public.projects (id, clips) values
          ($1, $6::text::jsonb), ($2, $7::text::jsonb), ($3, $5::text::jsonb), ($4, $8::text::jsonb)
        """,
        P1,
        P2,
        P3,
        P4,
        json.dumps({long_key: "pending", J.beside_long: "pending"}),
        json.dumps(
            {
                J.tracked: "pending",
                J.leased: "pending",
                J.settled: "https://vm.runware.ai/d.mp4",
                J.shared: "pending",
            }
        ),
        json.dumps({J.untracked: "pending", J.shared: "pending", J.early: "pending"}),
        json.dumps({J.done: "failed"}),
    )
    # v0.1 state: P1's jobs tracked (one leased by a replica that died), J.shared tracked for
    # P1 only (v0.1 keyed jobs by job id), a parked result for P2's J.early, a settled job.
    await conn.execute("select public.reconciler_read_project($1, 0, 0, true)", P1)
    await conn.execute(
        "update reconciler.jobs set lease_owner = 'crashed-replica',"
        " lease_expires_at = now() + interval '1 hour' where job_id = $1",
        J.leased,
    )
    await conn.execute(
        "insert into reconciler.jobs (job_id, project_id, settled_at, outcome)"
        " values ($2, $1, now(), 'failed')",
        P4,
        J.done,
    )
    await conn.execute(
        "insert into reconciler.parked_results (job_id, result) values ($2, $1)",
        URL_DONE,
        J.early,
    )
    # v0.1 could track a key this long (job id alone under its 2,704-byte limit).
    await conn.execute(
        "insert into reconciler.jobs (job_id, project_id) values ($1, $2)", long_key, P3
    )


async def test_v01_database_upgrades_and_every_clip_converges(
    released_db: str,
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
) -> None:
    long_key = "".join(random.Random(7).choice(string.ascii_letters) for _ in range(2_600))
    conn = await asyncpg.connect(released_db)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        await _load_v01_state(conn, long_key)
        for job in (J.tracked, J.leased, J.shared, J.untracked, J.beside_long):
            simulator.add_job(job, duration=0, outcome="success")

        applied = await apply_migrations(released_db)
        again = await apply_migrations(released_db)

        env = service_env | ENGINE_ENV | {"DATABASE_URL": released_db}
        async with run_app(env):

            async def converged() -> bool:
                pending = await conn.fetchval(
                    "select count(*) from public.projects p, jsonb_each(p.clips) e"
                    " where e.value = '\"pending\"' and length(e.key) < 100"
                )
                return bool(pending == 0)

            # As time would: the dead replica's lease expires, and the jobs the migration
            # back-filled (spread over a minute, not to stampede Runware) come due.
            await conn.execute(
                "update reconciler.jobs set lease_expires_at = now(), next_check_at = now()"
                " where settled_at is null"
            )
            await wait_until(converged, timeout=60)

        clips = {
            row["id"]: row["clips"]
            for row in await conn.fetch("select id, clips from public.projects")
        }
        truth = simulator.truth()
        on_projects = await conn.fetch(
            "select indexname from pg_indexes where tablename = 'projects'"
        )
        triggers = await conn.fetch(
            "select tgname from pg_trigger where tgrelid = 'public.projects'::regclass"
            " and not tgisinternal"
        )
        untrackable = await conn.fetchval("select count(*) from reconciler.untrackable_clips")
    finally:
        await conn.close()

    assert applied == [f.name for f in migration_files() if f.name > RELEASED]
    assert again == []
    assert clips[P1] == {
        J.tracked: truth[J.tracked],
        J.leased: truth[J.leased],
        J.settled: "https://vm.runware.ai/d.mp4",
        J.shared: truth[J.shared],
    }
    # Held by two projects: settled in both; the parked result applied.
    assert clips[P2] == {
        J.untracked: truth[J.untracked],
        J.shared: truth[J.shared],
        J.early: URL_DONE,
    }
    assert clips[P3] == {long_key: "pending", J.beside_long: truth[J.beside_long]}
    assert clips[P4] == {J.done: "failed"}
    # Nothing of ours is left on projects but its primary key and one trigger.
    assert [r["indexname"] for r in on_projects] == ["projects_pkey"]
    assert [r["tgname"] for r in triggers] == ["reconciler_clips_changed"]
    assert untrackable == 1


async def test_migrate_twice_at_once_applies_each_file_once(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_baseline_database()

    first, second = await asyncio.gather(apply_migrations(url), apply_migrations(url))

    assert sorted([first, second], key=len) == [[], [f.name for f in migration_files()]]
