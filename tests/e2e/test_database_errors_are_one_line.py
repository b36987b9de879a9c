"""A database error reaches the terminal and the logs as one line: PostgreSQL's HINT, which
asyncpg puts on a line of its own, is joined with "; " instead of showing up as a literal
`\\n` (`serve` without migrations logged such lines several times a second)."""

from __future__ import annotations

import asyncio

from tests.cli import run_reconciler
from tests.databases import PgCluster


async def test_status_without_migrations_says_so_in_one_line(pg_cluster: PgCluster) -> None:
    url = await pg_cluster.create_baseline_database()  # `projects`, no reconciler functions

    done = await asyncio.to_thread(run_reconciler, {"DATABASE_URL": url}, "status")

    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert "does not exist" in line
    assert "\\n" not in line
    assert "; HINT: " in line
    assert "reconciler migrate" in line
