"""Migrations are append-only: a database on every file before the lean check read, with a
project whose jobs are tracked under those files, upgrades with `reconciler migrate`; a check's
lean read then sees the jobs tracked before, oldest first, and the counts."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster

NEW_FILE = "20261208020000_clip_reconciler_lean_check.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000041")
URL_DONE = "https://vm.runware.ai/video/os/a1b2/ws/2/vi/done.mp4"


async def test_jobs_tracked_before_the_upgrade_are_read_by_the_lean_check(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    old, young, done = str(uuid4()), str(uuid4()), str(uuid4())
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps({old: "pending", done: URL_DONE}),
        )
        await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")
        await conn.execute(
            "update reconciler.jobs set first_seen_at = now() - interval '1 hour'"
            " where job_id = $1",
            old,
        )
        await conn.execute(
            "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
            " where id = $1",
            PROJECT,
            young,
        )

        applied = await apply_migrations(url)
    finally:
        await conn.close()

    assert NEW_FILE in applied
    store = await connect_postgres_store(url)
    try:
        read = await store.read_for_check(PROJECT, 0, 1, 1_000_000)
    finally:
        await store.close()
    assert read is not None
    assert list(read.asked) == [old]
    assert (read.asked[old] or 0) >= 3600
    assert read.more_pending == 1
    assert (read.counts.total, read.counts.completed, read.counts.pending) == (3, 1, 2)
    assert read.clips == {old: "pending", young: "pending", done: URL_DONE}
