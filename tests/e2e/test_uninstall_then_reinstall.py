"""`reconciler uninstall` (supabase/uninstall.sql) removes every object the migrations added and
leaves the app's rows exactly as they were; `reconciler migrate` installs it all again."""

from __future__ import annotations

import asyncio

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import new_project

OURS = """
select (select count(*) from pg_namespace where nspname = 'reconciler')
     + (select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'public' and p.proname like 'reconciler\\_%')
     + (select count(*) from pg_trigger
         where tgrelid = 'public.projects'::regclass and not tgisinternal)
     + (select count(*) from pg_indexes
         where tablename = 'projects' and indexname <> 'projects_pkey')
"""


async def test_uninstall_removes_everything_and_reinstall_works(
    db: asyncpg.Connection, database_url: str
) -> None:
    project = await new_project(db, {J.a: "pending", J.b: "https://vm.runware.ai/b.mp4"})
    await db.execute("select public.reconciler_drain_changes(100, 0, 0)")
    before = await db.fetch("select * from public.projects order by id")
    assert await db.fetchval(OURS) > 0

    refused = await asyncio.to_thread(run_reconciler, {"DATABASE_URL": database_url}, "uninstall")
    done = await asyncio.to_thread(
        run_reconciler, {"DATABASE_URL": database_url}, "uninstall", "--yes"
    )
    again = await asyncio.to_thread(
        run_reconciler, {"DATABASE_URL": database_url}, "uninstall", "--yes"
    )

    assert refused.returncode == 2
    assert "--yes" in refused.stderr
    assert done.returncode == again.returncode == 0, done.stderr + again.stderr
    assert await db.fetchval(OURS) == 0
    assert await db.fetch("select * from public.projects order by id") == before
    # The app goes on writing without us.
    await db.execute(
        "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
        " where id = $1",
        project,
        J.c,
    )

    applied = await apply_migrations(database_url)

    assert applied == [f.name for f in migration_files()]
    await db.execute("select public.reconciler_resync_page(null, 100, 0, 0)")
    tracked = await db.fetch("select job_id from reconciler.jobs")
    assert sorted(r["job_id"] for r in tracked) == sorted([J.a, J.c])
