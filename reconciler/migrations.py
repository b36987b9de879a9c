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


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every migration in order, each in its own transaction; returns the file names.

    Every file is idempotent, so applying again is safe; an advisory lock keeps replicas that
    start together from interleaving.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        applied = []
        for path in migration_files():
            async with conn.transaction():
                await conn.execute(path.read_text())
            applied.append(path.name)
        return applied
    finally:
        await conn.close()


async def apply_baseline(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(baseline_sql())
    finally:
        await conn.close()
