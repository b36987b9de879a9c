"""Migrations are append-only: a database on every file before the operator's archive read,
with archive tasks queued and given up under those files, upgrades with `reconciler migrate`;
the project view then shows each clip's archive state, and the overview the backlog."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from reconciler.operator.views import read_overview, read_project_view
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster

NEW_FILE = "20261202300000_clip_reconciler_operator_archive.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000031")
URL_KEPT = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/kept.mp4"
URL_GONE = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/gone.mp4"


async def test_archive_states_written_before_the_upgrade_are_shown_after_it(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        # State under the previous files: archiving on, two results written (each queued in
        # the same statement), one of them given up.
        await conn.execute("select public.reconciler_set_archiving(true)")
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps({"kept": "pending", "gone": "pending", "waiting": "pending"}),
        )
        await conn.execute(
            "select public.reconciler_apply_results($1, $2::text::jsonb)",
            PROJECT,
            json.dumps({"kept": URL_KEPT, "gone": URL_GONE}),
        )
        await conn.execute(
            "update reconciler.archive_tasks set state = 'given_up', last_error = 'gone'"
            " where job_id = 'gone'"
        )

        applied = await apply_migrations(url)
    finally:
        await conn.close()

    assert NEW_FILE in applied
    store = await connect_postgres_store(url)
    try:
        view = await read_project_view(store, PROJECT)
        overview = await read_overview(store)
    finally:
        await store.close()
    assert view is not None
    assert {clip.job_id: clip.archive_state for clip in view.clips} == {
        "kept": "queued",
        "gone": "given_up",
        "waiting": None,
    }
    assert overview.archive_backlog == 1
