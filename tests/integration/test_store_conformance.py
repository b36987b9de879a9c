"""The store conformance suite (tests/store_conformance.py) on a real database, through both
transports: the Postgres adapter and the Supabase (PostgREST RPC) adapter."""

from __future__ import annotations

import asyncpg
import pytest

from reconciler.store.functions import FunctionStore
from tests.store_conformance import PostgresHarness, StoreConformance


@pytest.fixture
def harness(store: FunctionStore, db: asyncpg.Connection) -> PostgresHarness:
    return PostgresHarness(store, db)


class TestBothTransportsConform(StoreConformance):
    pass
