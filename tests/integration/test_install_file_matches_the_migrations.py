"""`supabase/install.sql` (fresh installs) and `supabase/migrations/` (upgrades) build the same
database: the same functions with the same definitions, tables and columns, indexes, triggers,
constraints, grants and settings rows. Fails whenever one is changed without the other
(regenerate the install file: `python -m reconciler.local.install_file`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from reconciler.migrations import (
    _RECORD_SQL,
    apply_migrations,
    install_covers,
    install_file_path,
    migration_files,
)
from tests.databases import PgCluster

_CATALOG: dict[str, str] = {
    "schema": "select nspname, nspacl::text from pg_namespace where nspname = 'reconciler'",
    "functions": """
        select p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text
          from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'reconciler'
            or (n.nspname = 'public' and p.proname like 'reconciler\\_%')
    """,
    "relations": """
        select c.relname, c.relkind::text, c.reloptions::text, c.relacl::text
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'reconciler'
    """,
    "columns": """
        select c.relname, a.attname,
               row_number() over (partition by c.oid order by a.attnum),
               format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid), a.attacl::text
          from pg_attribute a
          join pg_class c on c.oid = a.attrelid
          join pg_namespace n on n.oid = c.relnamespace
          left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where n.nspname = 'reconciler' and a.attnum > 0 and not a.attisdropped
    """,
    "indexes": """
        select i.indexname, i.indexdef from pg_indexes i
         where i.schemaname = 'reconciler'
            or (i.schemaname = 'public' and i.tablename = 'projects')
    """,
    "triggers": """
        select c.relname, t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text
          from pg_trigger t join pg_class c on c.oid = t.tgrelid
          join pg_namespace n on n.oid = c.relnamespace
         where not t.tgisinternal
           and (n.nspname = 'reconciler' or (n.nspname = 'public' and c.relname = 'projects'))
    """,
    "constraints": """
        select c.relname, k.conname, pg_get_constraintdef(k.oid)
          from pg_constraint k join pg_class c on c.oid = k.conrelid
          join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'reconciler' or (n.nspname = 'public' and c.relname = 'projects')
    """,
    "settings rows": """
        select 'archive_settings', to_jsonb(s) - 'changed_at' from reconciler.archive_settings s
        union all
        select 'tracking_settings', to_jsonb(s) - 'changed_at' from reconciler.tracking_settings s
    """,
    "row counts": """
        select c.relname,
               (xpath('/row/n/text()', query_to_xml(
                   format('select count(*) as n from reconciler.%I', c.relname),
                   false, true, '')))[1]::text
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'reconciler' and c.relkind = 'r' and c.relname <> 'schema_migrations'
    """,
}


async def _catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    conn = await asyncpg.connect(url)
    try:
        return {
            name: sorted(tuple(str(v) for v in row) for row in await conn.fetch(sql))
            for name, sql in _CATALOG.items()
        }
    finally:
        await conn.close()


async def test_the_install_file_covers_every_migration_file() -> None:
    assert install_covers(install_file_path().read_text()) == migration_files()[-1].name


async def test_install_file_and_migration_files_build_the_same_database(
    pg_cluster: PgCluster,
) -> None:
    by_install = await pg_cluster.create_baseline_database()
    await apply_migrations(by_install)

    by_files = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(by_files)
    try:
        for path in migration_files():
            async with conn.transaction():
                await conn.execute(path.read_text())
        await conn.execute(_RECORD_SQL)
    finally:
        await conn.close()

    installed, migrated = await _catalog(by_install), await _catalog(by_files)
    for part in _CATALOG:
        assert installed[part] == migrated[part], f"{part} differ"
    assert len(installed["functions"]) > 40


async def test_a_fresh_install_records_every_migration_file(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_baseline_database()
    recorded = await apply_migrations(url)
    assert recorded == [f.name for f in migration_files()]
    assert await apply_migrations(url) == []
