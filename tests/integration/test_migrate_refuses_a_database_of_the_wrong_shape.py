"""`reconciler migrate` checks the database's shape before it changes anything: a `projects`
table with a uuid primary key `id` and jsonb `clips`, Supabase's roles and realtime publication.
Otherwise it exits non-zero with one line naming what differs and what to do, and the database
is as it was (no schema of ours, no record). And each file runs in one transaction: a file that
fails halfway leaves nothing of itself and no record."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from reconciler.migrations import MigrationRefused, apply_migrations, migration_files
from tests.cli import run_reconciler
from tests.databases import PgCluster

SHAPES = {
    "no projects table": (
        "drop table public.projects",
        "public.projects does not exist",
    ),
    "bigint id": (
        "drop table public.projects;"
        " create table public.projects (id bigint primary key, clips jsonb)",
        "public.projects.id is bigint; the reconciler needs a uuid primary key",
    ),
    "id not the primary key": (
        "alter table public.projects drop constraint projects_pkey",
        "public.projects has no primary key; the reconciler needs id as its primary key",
    ),
    "json clips": (
        "alter table public.projects alter column clips drop default,"
        " alter column clips type json using clips::json",
        "public.projects.clips is json; the reconciler needs jsonb",
    ),
    "no clips column": (
        "alter table public.projects drop column clips",
        "public.projects has no column clips",
    ),
    # Roles belong to the cluster: renamed for the test, renamed back after it (below).
    "no anon role": (
        "alter role anon rename to anon_renamed_by_a_test",
        "role(s) anon missing",
    ),
    "no realtime publication": (
        "drop publication supabase_realtime",
        "publication supabase_realtime missing",
    ),
}


async def _database_without_our_schema(pg_cluster: PgCluster, change: str) -> str:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(change)
    finally:
        await conn.close()
    return url


async def _our_traces(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """
            select nspname as name from pg_namespace where nspname = 'reconciler'
            union all
            select proname from pg_proc where proname like 'reconciler\\_%'
            union all
            select tgname from pg_trigger where tgname like 'reconciler\\_%'
            """
        )
        return [row["name"] for row in rows]
    finally:
        await conn.close()


@pytest.mark.parametrize("shape", SHAPES)
async def test_migrate_refuses_and_changes_nothing(pg_cluster: PgCluster, shape: str) -> None:
    change, expected = SHAPES[shape]
    url = await _database_without_our_schema(pg_cluster, change)
    try:
        with pytest.raises(MigrationRefused) as refused:
            await apply_migrations(url)
    finally:
        if "rename to" in change:
            conn = await asyncpg.connect(url)
            try:
                await conn.execute("alter role anon_renamed_by_a_test rename to anon")
            finally:
                await conn.close()

    assert expected in str(refused.value)
    assert "\n" not in str(refused.value)
    assert await _our_traces(url) == []


async def test_the_command_says_what_differs_in_one_line_and_exits_non_zero(
    pg_cluster: PgCluster,
) -> None:
    change, expected = SHAPES["bigint id"]
    url = await _database_without_our_schema(pg_cluster, change)

    result = run_reconciler({"DATABASE_URL": url}, "migrate")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "error: public.projects.id is bigint; the reconciler needs a uuid primary key"
        " (Supabase's default for new tables)"
    ]
    assert expected in result.stderr
    assert await _our_traces(url) == []


async def test_a_file_that_fails_halfway_leaves_the_database_as_it_was(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    url = await pg_cluster.create_database()  # every real migration applied
    for path in migration_files():
        shutil.copy(path, tmp_path / path.name)
    broken = "29991231000000_fails_halfway.sql"
    (tmp_path / broken).write_text(
        """
        create table reconciler.half_done (id integer);
        insert into reconciler.half_done values (1);
        create or replace function public.reconciler_half_done() returns integer
        language sql set search_path = '' as $$ select 1 $$;
        select 1 / 0;
        create table reconciler.never_reached (id integer);
        """
    )

    with pytest.raises(asyncpg.DivisionByZeroError):
        await apply_migrations(url, directory=tmp_path)

    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("select to_regclass('reconciler.half_done')") is None
        assert (
            await conn.fetchval("select to_regprocedure('public.reconciler_half_done()')") is None
        )
        assert not await conn.fetchval(
            "select exists (select 1 from reconciler.schema_migrations where name = $1)", broken
        )
    finally:
        await conn.close()

    result = run_reconciler({"DATABASE_URL": url}, "migrate")
    assert result.returncode == 0, result.stderr  # the real files: nothing left to do
    assert result.stdout.strip() == "already up to date"
