"""Locating and applying the SQL migrations (`reconciler migrate`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import asyncpg

# Any constant works; it only has to be the same for every replica running `migrate`.
_MIGRATION_LOCK_KEY = 0x636C6970


def migrations_dir() -> Path:
    """`supabase/migrations` in a source checkout, else the copy packaged into the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "supabase" / "migrations"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("reconciler") / "migrations"))


def migration_files() -> list[Path]:
    files = sorted(migrations_dir().glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {migrations_dir()}")
    return files


def baseline_sql() -> str:
    """Supabase's roles, publication and `projects` table, for plain PostgreSQL only."""
    return (resources.files("reconciler") / "sql" / "supabase_baseline.sql").read_text()


# Files released before `reconciler migrate` kept a record: a database that has our schema but
# no record has had exactly these applied (by an earlier `migrate` or by `supabase db push`).
_RELEASED_BEFORE_RECORDS = ("20261124000000_clip_reconciler.sql",)

_RECORD_SQL = """
create schema if not exists reconciler;
create table if not exists reconciler.schema_migrations (
    name       text primary key,
    applied_at timestamptz not null default now()
);
revoke all on reconciler.schema_migrations from public;
"""


async def _applied(conn: asyncpg.Connection) -> set[str]:
    had_schema = bool(await conn.fetchval("select to_regclass('reconciler.jobs') is not null"))
    had_records = bool(
        await conn.fetchval("select to_regclass('reconciler.schema_migrations') is not null")
    )
    await conn.execute(_RECORD_SQL)
    if had_schema and not had_records:
        await conn.executemany(
            "insert into reconciler.schema_migrations (name) values ($1) on conflict do nothing",
            [(name,) for name in _RELEASED_BEFORE_RECORDS],
        )
    rows = await conn.fetch("select name from reconciler.schema_migrations")
    return {row["name"] for row in rows}


async def apply_migrations(dsn: str) -> list[str]:
    """Apply, in order, every migration this database has not had yet, each in its own
    transaction with its record; returns the names of the files applied now.

    Safe to repeat: applied files are skipped (re-running v0.1's file would rebuild an index on
    `projects` that v2 drops). Each file is idempotent as well, for `supabase db push` users who
    mix both. An advisory lock keeps replicas that start together from interleaving.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        done = await _applied(conn)
        applied = []
        for path in migration_files():
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "insert into reconciler.schema_migrations (name) values ($1)", path.name
                )
            applied.append(path.name)
        return applied
    finally:
        await conn.close()


def uninstall_sql() -> str:
    """Removes every object the migrations added; `projects` rows stay as they are."""
    checkout = Path(__file__).resolve().parent.parent / "supabase" / "uninstall.sql"
    if checkout.is_file():
        return checkout.read_text()
    return (resources.files("reconciler") / "uninstall.sql").read_text()


async def uninstall(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        async with conn.transaction():
            await conn.execute(uninstall_sql())
    finally:
        await conn.close()


async def apply_baseline(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(baseline_sql())
    finally:
        await conn.close()
