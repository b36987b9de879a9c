"""The catalogue in reconciler/store/calls.py is the only place Python names our SQL functions
and their arguments: each catalogued function exists in `public` once, with exactly those
argument names and types, in that order, as the migrations create it."""

from __future__ import annotations

import asyncpg

from reconciler.store.calls import CATALOGUE

Signature = tuple[tuple[str, ...], tuple[str, ...]]


async def _signatures_in_database(db: asyncpg.Connection) -> dict[str, list[Signature]]:
    rows = await db.fetch(
        "select p.proname,"
        " coalesce(p.proargnames, '{}') as names,"
        " array(select format_type(a.type, null)"
        "       from unnest(p.proargtypes::oid[]) with ordinality as a(type, position)"
        "       order by a.position) as types"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.proname = any($1::text[])",
        [function.name for function in CATALOGUE],
    )
    found: dict[str, list[Signature]] = {}
    for row in rows:
        found.setdefault(row["proname"], []).append((tuple(row["names"]), tuple(row["types"])))
    return found


async def test_each_catalogued_function_exists_with_exactly_its_arguments(
    db: asyncpg.Connection,
) -> None:
    expected = {
        function.name: [(function.argument_names, function.argument_types)]
        for function in CATALOGUE
    }
    assert await _signatures_in_database(db) == expected
