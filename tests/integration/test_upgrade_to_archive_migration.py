"""Migrations are append-only: a database on the files before the archive migration, holding
state of every kind, upgrades with `reconciler migrate`, and with archiving on everything
converges: pending clips settle and are archived, a parked result too, and URLs written
before the upgrade are archived once back-filled. Re-running the file keeps the queue."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import UUID

import asyncpg
import pytest

from reconciler.archive.paths import source_prefixes
from reconciler.config import load_settings
from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from reconciler.migrations import apply_migrations, migration_files
from reconciler.store.postgres import connect_postgres_store
from tests.archiving import (
    BUCKET,
    archive_env,
    archive_tasks,
    assert_archived_byte_for_byte,
    serve_videos,
)
from tests.databases import PgCluster
from tests.job_ids import J
from tests.plugin import AppFactory
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

ARCHIVE = "20261202100000_clip_reconciler_archive.sql"
P1 = UUID("00000000-0000-4000-8000-0000000000a1")
P2 = UUID("00000000-0000-4000-8000-0000000000a2")


@pytest.fixture
async def previous_db(pg_cluster: PgCluster) -> str:
    """Supabase's baseline and every migration file before the archive one."""
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for file in migration_files():
            if file.name < ARCHIVE:
                await conn.execute(file.read_text())
    finally:
        await conn.close()
    return url


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


async def test_previous_database_upgrades_and_every_video_is_archived(
    previous_db: str,
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
) -> None:
    serve_videos(simulator)
    for job in (J.old, J.tracked, J.leased, J.early):
        simulator.add_job(job, duration=0, outcome="success")
    simulator.add_job(J.broken, duration=0, outcome="error")
    conn = await asyncpg.connect(previous_db)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    try:
        # State under the previous files: a URL written before the upgrade, tracked pending
        # jobs (one leased by a replica that died), a parked webhook result, a failure.
        old_url = simulator.truth()[J.old]
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $3), ($2, $4)",
            P1,
            P2,
            {J.old: old_url, J.tracked: "pending", J.leased: "pending"},
            {J.early: "pending", J.broken: "pending"},
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        await conn.execute(
            "update reconciler.jobs set lease_owner = 'crashed-replica',"
            " lease_expires_at = now() + interval '1 hour' where job_id = $1",
            J.leased,
        )
        await conn.execute(
            "insert into reconciler.parked_results (job_id, result) values ($2, $1)",
            simulator.truth()[J.early],
            J.early,
        )

        applied = await apply_migrations(previous_db)
        again = await apply_migrations(previous_db)

        env = archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY) | {
            "DATABASE_URL": previous_db
        }
        async with run_app(env):
            # As time would: the dead replica's lease expires.
            await conn.execute(
                "update reconciler.jobs set lease_expires_at = now(), next_check_at = now()"
                " where settled_at is null"
            )
            store = await connect_postgres_store(previous_db)
            try:
                prefix = f"{storage.url}/storage/v1/object/public/{BUCKET}/"
                sources = source_prefixes(load_settings(env).allowed_url_hosts)
                page = await store.archive_backfill_page(None, 100, sources, prefix)
            finally:
                await store.close()

            async def converged() -> bool:
                tasks = await archive_tasks(conn)
                return len(tasks) == 4 and all(t["state"] == "archived" for t in tasks.values())

            await wait_until(converged, timeout=60)

        # Re-running the file (as `supabase db push` never would, but `migrate` may) keeps
        # the queue and the switch.
        await conn.execute((migration_files()[-1]).read_text())
        tasks_after_rerun = await archive_tasks(conn)
        enabled = await conn.fetchval("select enabled from reconciler.archive_settings")
        assert await assert_archived_byte_for_byte(conn, storage, storage.url) == 4
        broken = await conn.fetchval(
            "select clips ->> $2 from public.projects where id = $1", P2, J.broken
        )
    finally:
        await conn.close()

    # The previous files were applied as `supabase db push` does, without `migrate`'s
    # records: `migrate` re-runs v2 (idempotent, over the loaded state), then the new file and
    # any later one.
    assert applied[applied.index(ARCHIVE) :] == [
        f.name for f in migration_files() if f.name >= ARCHIVE
    ]
    assert again == []
    # The back-fill found the URL written before the upgrade (the others were pending then,
    # or settled by the service before the page was read: then queued by the write itself).
    assert page.scanned == 2
    assert {job for _, job in tasks_after_rerun} == {J.old, J.tracked, J.leased, J.early}
    assert enabled is True
    assert broken == "failed"
