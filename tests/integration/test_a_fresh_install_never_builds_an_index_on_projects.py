"""A fresh install (`reconciler migrate` on a database without our schema) never builds an index
on `projects` — `CREATE INDEX` blocks every write of the table while it builds — and records
what it installed for both `reconciler migrate` and the Supabase CLI. Pending clips the app
wrote before the install are tracked by the back-fill that follows it."""

from __future__ import annotations

import json
from uuid import uuid4

import asyncpg

from reconciler.migrations import LockLimits, apply_migrations, migration_files
from tests.databases import PgCluster

# Records every CREATE INDEX whose table is public.projects, whoever runs it.
_WATCH_INDEXES = """
create table public.indexes_built_on_projects (index_name text, built_at timestamptz);
create function public.record_indexes_on_projects() returns event_trigger
language plpgsql as $$
declare
    r record;
begin
    for r in select * from pg_event_trigger_ddl_commands() where command_tag = 'CREATE INDEX'
    loop
        insert into public.indexes_built_on_projects
        select r.object_identity, clock_timestamp()
          from pg_index i where i.indexrelid = r.objid
           and i.indrelid = 'public.projects'::regclass;
    end loop;
end;
$$;
create event trigger record_indexes_on_projects on ddl_command_end
    when tag in ('CREATE INDEX') execute function public.record_indexes_on_projects();
"""


async def test_migrate_on_an_empty_database_never_creates_an_index_on_projects(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_WATCH_INDEXES)
        # The watcher works: an index on projects is recorded.
        await conn.execute("create index watcher_probe on public.projects (updated_at)")
        await conn.execute("drop index public.watcher_probe")
        await conn.execute("truncate public.indexes_built_on_projects")

        await apply_migrations(url)

        built = await conn.fetch("select index_name from public.indexes_built_on_projects")
        assert [row["index_name"] for row in built] == []
        assert await conn.fetchval("select to_regclass('reconciler.jobs') is not null")
    finally:
        await conn.close()


async def test_a_fresh_install_is_recorded_for_the_supabase_cli(pg_cluster: PgCluster) -> None:
    """On a Supabase project the CLI's own table gets every version, so that `supabase db push`
    of the same files skips them instead of replaying v0.1's index."""
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        # What the Supabase CLI creates on its first `db push`.
        await conn.execute(
            """
            create schema supabase_migrations;
            create table supabase_migrations.schema_migrations (
                version text primary key, statements text[], name text);
            """
        )
        await apply_migrations(url)
        rows = await conn.fetch(
            "select version, name from supabase_migrations.schema_migrations order by version"
        )
        assert [(row["version"], row["name"]) for row in rows] == [
            tuple(f.name.removesuffix(".sql").split("_", 1)) for f in migration_files()
        ]
        names = await conn.fetch("select name from reconciler.schema_migrations order by name")
        assert [row["name"] for row in names] == [f.name for f in migration_files()]
    finally:
        await conn.close()


async def test_pending_clips_written_before_the_install_are_tracked(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    job, done = str(uuid4()), str(uuid4())
    project = uuid4()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::jsonb)",
            project,
            json.dumps({job: "pending", done: "https://vm.runware.ai/video/done.mp4"}),
        )
        await apply_migrations(url)
        tracked = await conn.fetch(
            "select job_id from reconciler.jobs where project_id = $1 and settled_at is null",
            project,
        )
        assert [row["job_id"] for row in tracked] == [job]
    finally:
        await conn.close()


async def test_the_back_fill_never_waits_for_a_project_the_app_keeps_locked(
    pg_cluster: PgCluster,
) -> None:
    """A pending project whose row an app transaction holds is skipped after the lock timeout
    (named on the console, left to the resync) instead of holding the back-fill, and the rows
    it already took, until the app's transaction ends."""
    url = await pg_cluster.create_baseline_database()
    locked, free = uuid4(), uuid4()
    conn = await asyncpg.connect(url)
    app = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $3::jsonb), ($2, $4::jsonb)",
            locked,
            free,
            json.dumps({str(uuid4()): "pending"}),
            json.dumps({str(uuid4()): "pending"}),
        )
        await app.execute("begin")
        await app.execute("select 1 from public.projects where id = $1 for update", locked)
        lines: list[str] = []

        await apply_migrations(url, limits=LockLimits(lock_timeout_seconds=0.5), say=lines.append)

        assert any(f"back-fill: project {locked} skipped" in line for line in lines), lines
        tracked = await conn.fetch("select distinct project_id from reconciler.jobs")
        assert [row["project_id"] for row in tracked] == [free]
    finally:
        await app.close()
        await conn.close()
