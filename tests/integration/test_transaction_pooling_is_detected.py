"""The start-up probe tells a transaction-mode pooler (PgBouncer's `pool_mode=transaction`, as
behind Supabase's port 6543) from PostgreSQL itself and from a session-mode pooler; behind the
former the store still works, its prepared-statement cache off."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

from reconciler.store.postgres import connect_postgres_store, uses_transaction_pooling
from tests.pgbouncer import running_pgbouncer


def _via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


async def test_a_direct_connection_is_not_pooled(database_url: str) -> None:
    assert await uses_transaction_pooling(database_url) is False


async def test_a_session_mode_pooler_is_not_transaction_pooling(database_url: str) -> None:
    target = urlsplit(database_url).port
    assert target is not None
    async with running_pgbouncer(target, pool_mode="session") as port:
        assert await uses_transaction_pooling(_via(database_url, port)) is False


async def test_a_transaction_mode_pooler_is_detected_and_the_store_works_behind_it(
    database_url: str,
) -> None:
    target = urlsplit(database_url).port
    assert target is not None
    async with running_pgbouncer(target, pool_mode="transaction", servers=2) as port:
        url = _via(database_url, port)
        assert await uses_transaction_pooling(url) is True
        # Many concurrent calls over more client connections than server connections: with
        # asyncpg's statement cache on, these fail with "prepared statement ... does not exist".
        store = await connect_postgres_store(url, max_size=6)
        try:
            await asyncio.gather(*(store.ping() for _ in range(300)))
            summaries = await asyncio.gather(*(store.pending_stats() for _ in range(60)))
            pages = await asyncio.gather(
                *(store.projects_with_pending(None, 10) for _ in range(60))
            )
        finally:
            await store.close()
    assert len(summaries) == 60
    assert pages == [[]] * 60
