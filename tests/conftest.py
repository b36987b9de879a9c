from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from reconciler.localpg import LocalPostgres
from reconciler.serving import serve
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store
from reconciler.store.supabase import connect_supabase_store
from tests.databases import TestCluster
from tests.standins.postgrest import SERVICE_ROLE_KEY, PostgrestStandIn


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[TestCluster]:
    with LocalPostgres() as server:
        cluster = TestCluster(server)
        cluster.prepare_template()
        yield cluster


@pytest.fixture
async def database_url(pg_cluster: TestCluster) -> str:
    return await pg_cluster.create_database()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection for arranging and inspecting state (the app's side)."""
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield conn
    await conn.close()


@pytest.fixture
async def postgrest(database_url: str) -> AsyncIterator[tuple[PostgrestStandIn, str]]:
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as url:
        yield stand_in, url


@pytest.fixture(params=["postgres", "supabase"])
async def store(
    request: pytest.FixtureRequest, database_url: str
) -> AsyncIterator[FunctionStore]:
    """The Store port through each transport, on the same kind of real database."""
    if request.param == "postgres":
        store = await connect_postgres_store(database_url)
        yield store
        await store.close()
        return
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as url:
        store = await connect_supabase_store(url, SERVICE_ROLE_KEY)
        yield store
        await store.close()
