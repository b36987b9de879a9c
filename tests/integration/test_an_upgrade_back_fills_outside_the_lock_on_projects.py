"""`reconciler migrate` upgrading from v0.1 runs the released v2 file without its back-fill, whose
one pass over every project would run while the file's transaction holds an ACCESS EXCLUSIVE
lock on `projects` (taken by its first statement, dropping v0.1's trigger), and back-fills
afterwards a page of projects per short transaction. The file itself stays as released, for
`supabase db push`; the pending clips v0.1 never tracked are tracked all the same."""

from __future__ import annotations

import json
from uuid import uuid4

import asyncpg

from reconciler.migrations import apply_migrations, migration_files, without_backfill
from tests.databases import PgCluster

V01 = "20261124000000_clip_reconciler.sql"
V2 = "20261202000000_clip_reconciler_v2.sql"


def test_the_released_v2_file_is_run_without_its_back_fill() -> None:
    [v2] = [f for f in migration_files() if f.name == V2]
    released = v2.read_text()

    sql, deferred = without_backfill(V2, released)

    assert deferred
    # A block cut from the middle: the grants that end the file still run.
    assert sql.endswith(released[-300:])
    assert "reconciler.reconcile_project(v_id, 0, 60, true)" in released
    assert "reconciler.reconcile_project(v_id, 0, 60, true)" not in sql
    assert len(released) - len(sql) < 1000  # only the back-fill's block
    assert "drop trigger if exists reconciler_clips_changed on public.projects" in sql


async def test_an_upgrade_from_v01_tracks_every_pending_clip(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_baseline_database()
    [v01] = [f for f in migration_files() if f.name == V01]
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(v01.read_text())
        # Written while v0.1 ran but never seen by it (its service was not running): the
        # back-fill is what finds them. More than one page of projects.
        await conn.execute(
            "insert into public.projects (id, clips)"
            " select gen_random_uuid(), jsonb_build_object(gen_random_uuid()::text, 'pending')"
            " from generate_series(1, 1200)"
        )
        project, job = uuid4(), str(uuid4())
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::jsonb)",
            project,
            json.dumps({job: "pending"}),
        )
        lines: list[str] = []

        applied = await apply_migrations(url, say=lines.append)

        assert applied == [f.name for f in migration_files() if f.name > V01]
        assert f"applied {V2} (its back-fill follows, in pages)" in lines
        assert lines[-1] == "back-filled pending clips: scanned 1201 projects"
        assert (
            await conn.fetchval("select count(*) from reconciler.jobs where settled_at is null")
            == 1201
        )
        assert await conn.fetchval(
            "select exists (select 1 from reconciler.jobs where project_id = $1 and job_id = $2)",
            project,
            job,
        )
    finally:
        await conn.close()
