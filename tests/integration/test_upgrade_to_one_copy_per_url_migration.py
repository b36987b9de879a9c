"""Migrations are append-only: a database on every file before the one-copy-per-URL file,
holding archive tasks of every state under the old one-task-per-clip model (one URL queued by
three projects, one of them archived already; a URL alone; a URL given up; a URL given up for
one clip and queued for another), upgrades with `reconciler migrate`. After it each URL is one
copy, the clips that waited for a URL already stored hold the object, each clip's state is
kept, the queue works on, and re-running the file changes nothing."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from reconciler.ports import ArchivedObject
from reconciler.store.postgres import connect_postgres_store
from tests.databases import PgCluster

NEW_FILE = "20261208030000_clip_reconciler_archive_once.sql"
JOB = "5b0f3c1e-6a0e-4a8e-9d1e-000000000001"
ALONE_JOB = "5b0f3c1e-6a0e-4a8e-9d1e-000000000002"
GONE_JOB = "5b0f3c1e-6a0e-4a8e-9d1e-000000000003"
MIXED_JOB = "5b0f3c1e-6a0e-4a8e-9d1e-000000000004"
P = [UUID(f"00000000-0000-4000-8000-0000000001{i:02d}") for i in range(7)]
SHARED = "https://vm.runware.ai/video/os/s/ws/2/vi/shared.mp4"
ALONE = "https://vm.runware.ai/video/os/q/ws/2/vi/alone.mp4"
GONE = "https://vm.runware.ai/video/os/g/ws/2/vi/gone.mp4"
MIXED = "https://vm.runware.ai/video/os/m/ws/2/vi/mixed.mp4"
PUBLIC = "https://example.supabase.co/storage/v1/object/public/videos/"
STORED = f"{PUBLIC}{P[0]}/{JOB}.mp4"
SHA = "aa" * 32


async def _load_old_state(conn: asyncpg.Connection) -> None:
    await conn.execute("select public.reconciler_set_archiving(true)")
    holders = {
        P[0]: {JOB: SHARED},
        P[1]: {JOB: SHARED},
        P[2]: {JOB: SHARED},
        P[3]: {ALONE_JOB: ALONE},
        P[4]: {GONE_JOB: GONE},
        P[5]: {MIXED_JOB: MIXED},
        P[6]: {MIXED_JOB: MIXED},
    }
    for project, results in holders.items():
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            project,
            json.dumps(dict.fromkeys(results, "pending")),
        )
        await conn.execute(
            "select public.reconciler_apply_results($1, $2::text::jsonb)",
            project,
            json.dumps(results),
        )
    # P0's copy of SHARED finished under the old files: object stored, clip swapped.
    await conn.execute(
        "update reconciler.archive_tasks set state = 'archived', finished_at = now(),"
        " attempts = 1, archived_url = $2, object_path = $3, size_bytes = 10, sha256 = $4"
        " where project_id = $1",
        P[0],
        STORED,
        f"{P[0]}/{JOB}.mp4",
        SHA,
    )
    await conn.execute(
        "update public.projects set clips = jsonb_build_object($2::text, $3::text) where id = $1",
        P[0],
        JOB,
        STORED,
    )
    await conn.execute(
        "update reconciler.archive_tasks set state = 'given_up', finished_at = now(),"
        " last_error = 'source gone (404)' where project_id = any($1::uuid[])",
        [P[4], P[5]],
    )


async def _snapshot(conn: asyncpg.Connection) -> tuple[Any, ...]:
    copies = await conn.fetch(
        "select source_url, project_id, job_id, state, attempts, requeues, archived_url"
        " from reconciler.archive_tasks order by source_url"
    )
    clips = await conn.fetch(
        "select project_id, job_id, source_url, state from reconciler.archive_clips"
        " order by project_id"
    )
    projects = await conn.fetch("select id, clips::text from public.projects order by id")
    return tuple(map(tuple, copies)), tuple(map(tuple, clips)), tuple(map(tuple, projects))


async def test_old_tasks_become_one_copy_per_url_and_waiting_clips_get_the_stored_object(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await _load_old_state(conn)
        assert await conn.fetchval("select count(*) from reconciler.archive_tasks") == 7

        applied = await apply_migrations(url)

        assert NEW_FILE in applied
        copies = {
            r["source_url"]: dict(r)
            for r in await conn.fetch("select * from reconciler.archive_tasks")
        }
        assert {u: (c["state"], c["project_id"]) for u, c in copies.items()} == {
            SHARED: ("archived", P[0]),
            ALONE: ("queued", P[3]),
            GONE: ("given_up", P[4]),
            MIXED: ("queued", P[6]),
        }
        # The clips that waited for SHARED hold the object stored before the upgrade.
        for project in P[:3]:
            clips = json.loads(
                await conn.fetchval(
                    "select clips::text from public.projects where id = $1", project
                )
            )
            assert clips == {JOB: STORED}
        before_rerun = await _snapshot(conn)
        await conn.execute((next(p for p in migration_files() if p.name == NEW_FILE)).read_text())
        assert await _snapshot(conn) == before_rerun
    finally:
        await conn.close()

    store = await connect_postgres_store(url)
    try:
        states = {p: await store.project_archive_states(p) for p in P}
        assert states == {
            P[0]: {JOB: "archived"},
            P[1]: {JOB: "archived"},
            P[2]: {JOB: "archived"},
            P[3]: {ALONE_JOB: "queued"},
            P[4]: {GONE_JOB: "given_up"},
            P[5]: {MIXED_JOB: "given_up"},
            P[6]: {MIXED_JOB: "queued"},
        }
        # The queue works on: the two copies still to make, each once.
        claimed = {t.source_url: t for t in await store.claim_archive_tasks("r", 10, 30, 10)}
        assert set(claimed) == {ALONE, MIXED}
        task = claimed[MIXED]
        object_path = f"{task.project_id}/{task.job_id}.mp4"
        archived = ArchivedObject(object_path, PUBLIC + object_path, 10, SHA)
        assert await store.archive_succeeded(task, archived) == "archived"
        assert (await store.project_archive_states(P[6])) == {MIXED_JOB: "archived"}
    finally:
        await store.close()
