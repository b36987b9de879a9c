"""`doctor`'s migrations line, and the gate `serve` waits behind, judge a database by what this
version calls — every catalogued function, with its arguments — and by whichever record exists:
`reconciler migrate`'s or the Supabase CLI's (`supabase db push` records each file by its
timestamp version, and writes nothing of ours). A database migrated with `supabase db push`
must not be told to run `reconciler migrate`, nor a service on it be kept unready."""

from __future__ import annotations

import asyncpg

from reconciler.doctor import _migrations_finding, schema_problem
from reconciler.migrations import migration_files
from tests.databases import PgCluster

CLI_RECORDS = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (
    version text primary key, statements text[], name text
);
"""


async def test_files_applied_by_the_supabase_cli_or_by_hand_are_recognised(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            await conn.execute(path.read_text())
        by_hand = await _migrations_finding(conn)
        gate_by_hand = await schema_problem(url)

        await conn.execute(CLI_RECORDS)
        versions = [path.name.split("_", 1)[0] for path in migration_files()]
        await conn.executemany(
            "insert into supabase_migrations.schema_migrations (version) values ($1)",
            [(version,) for version in versions[:-1]],
        )
        one_short = await _migrations_finding(conn)
        await conn.execute(
            "insert into supabase_migrations.schema_migrations (version) values ($1)", versions[-1]
        )
        pushed = await _migrations_finding(conn)
        gate_pushed = await schema_problem(url)

        await conn.execute("drop function public.reconciler_operator_overview")
        a_function_gone = await _migrations_finding(conn)
        gate_gone = await schema_problem(url)
    finally:
        await conn.close()

    assert by_hand.ok, by_hand.detail
    assert gate_by_hand is None
    assert not one_short.ok
    assert migration_files()[-1].name in one_short.detail
    assert pushed.ok, pushed.detail
    assert gate_pushed is None
    assert not a_function_gone.ok
    assert "reconciler_operator_overview" in a_function_gone.detail
    assert "reconciler migrate" in a_function_gone.detail
    assert gate_gone is not None
