"""Test databases: one throw-away cluster per test session, a fresh database per test.

The template database gets Supabase's baseline (roles, publication, `projects`) and the
migration once; each test clones it, which takes milliseconds and isolates tests completely.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from reconciler.local.localpg import LocalPostgres, find_pg_binary
from reconciler.migrations import apply_baseline, apply_migrations

TEMPLATE = "reconciler_template"
_counter = itertools.count()


@dataclass
class PgCluster:
    server: LocalPostgres

    def dsn(self, database: str = "postgres") -> str:
        return self.server.dsn(database)

    def prepare_template(self) -> None:
        asyncio.run(self._prepare_template())

    async def _prepare_template(self) -> None:
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f"create database {TEMPLATE}")
        finally:
            await admin.close()
        await apply_baseline(self.dsn(TEMPLATE))
        await apply_migrations(self.dsn(TEMPLATE))
        conn = await asyncpg.connect(self.dsn(TEMPLATE))
        try:
            await conn.execute((Path(__file__).parent / "sql" / "app_rls.sql").read_text())
        finally:
            await conn.close()

    async def create_database(self) -> str:
        """A fresh database cloned from the migrated template."""
        return await self._create(f"template {TEMPLATE}")

    async def create_baseline_database(self) -> str:
        """A fresh database with Supabase's baseline only: none of our migrations applied."""
        url = await self._create("")
        await apply_baseline(url)
        return url

    async def _create(self, options: str) -> str:
        name = f"test_{next(_counter)}"
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f"create database {name} {options}")
        finally:
            await admin.close()
        return self.dsn(name)


def stop_server(server: LocalPostgres) -> None:
    """`pg_ctl stop -m fast`, the first half of a managed restart: every session is ended
    (FATAL 57P01 to each client) and new connections are refused until `server.start()`.
    The cluster must be one the test started for itself: the session's is shared."""
    done = server._run_as_owner(
        [find_pg_binary("pg_ctl"), "-D", str(server._data), "-m", "fast", "-w", "stop"]
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctl stop failed ({done.returncode}): {done.stderr.strip()}")


async def dedicated_cluster() -> PgCluster:
    """A cluster of the test's own, template prepared (stop it with `cluster.server.stop()`)."""
    server = LocalPostgres()
    await asyncio.to_thread(server.start)
    cluster = PgCluster(server)
    try:
        await asyncio.to_thread(cluster.prepare_template)
    except BaseException:
        await asyncio.to_thread(server.stop)
        raise
    return cluster
