"""The Postgres store can be made while the database is unreachable (the service starts and
says it is not ready): calls fail as unavailable, and the first call once it is back makes the
pool, probe included, and succeeds. No restart of the service."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from reconciler.ports import StoreUnavailable
from reconciler.store.postgres import connect_postgres_store
from tests.standins.tcp_proxy import TcpProxy


async def test_the_store_connects_once_the_database_is_back(database_url: str) -> None:
    target = urlsplit(database_url)
    async with TcpProxy("127.0.0.1", target.port or 5432).running() as proxy:
        url = urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}"))
        proxy.cut()
        store = await connect_postgres_store(url)
        try:
            with pytest.raises(StoreUnavailable):
                await store.ping()
            with pytest.raises(StoreUnavailable):
                await store.pending_stats()
            proxy.restore()
            await store.ping()
            stats = await store.pending_stats()
        finally:
            await store.close()
    assert stats is not None
    assert proxy.refused >= 2
