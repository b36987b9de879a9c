"""The in-memory store the unit tests use passes the same conformance suite as both real
transports (tests/store_conformance.py), on a clock that moves only when told to."""

from __future__ import annotations

import pytest

from tests.fake_clock import FakeClock
from tests.fakes.memory_store import MemoryStore
from tests.store_conformance import MemoryHarness, StoreConformance


@pytest.fixture
def harness() -> MemoryHarness:
    return MemoryHarness(MemoryStore(FakeClock()))


class TestMemoryStoreConforms(StoreConformance):
    pass
