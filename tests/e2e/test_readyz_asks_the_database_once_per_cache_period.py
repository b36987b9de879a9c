"""/readyz is anonymous: however many calls arrive, together or one after another, the database
is asked at most once per `READY_CACHE_SECONDS` (a failing database too); the answer is reused
until then. Time is a fake clock the test moves, so no call is timed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from reconciler.app import create_app
from reconciler.config import load_settings
from reconciler.http.health import READY_CACHE_SECONDS
from reconciler.local.serving import serve
from reconciler.ports import StoreUnavailable
from tests.fake_clock import FakeClock

CALLS = 50


@dataclass
class Probe:
    client: httpx.AsyncClient
    clock: FakeClock
    pings: int = 0
    database_down: bool = False

    async def statuses(self) -> list[int]:
        """CALLS concurrent /readyz calls, then CALLS more one after another."""
        together = await asyncio.gather(*(self.client.get("/readyz") for _ in range(CALLS)))
        in_turn = [await self.client.get("/readyz") for _ in range(CALLS)]
        return [answer.status_code for answer in (*together, *in_turn)]


@pytest.fixture
async def probe(
    service_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Probe]:
    clock = FakeClock()
    app = create_app(load_settings(service_env), clock=clock)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        probe = Probe(client, clock)
        store = app.state.services.store
        real_ping = store.ping

        async def counted_ping() -> None:
            probe.pings += 1
            if probe.database_down:
                raise StoreUnavailable("connection refused (stand-in)")
            await real_ping()

        monkeypatch.setattr(store, "ping", counted_ping)
        yield probe


async def test_many_calls_ask_the_database_once_per_period(probe: Probe) -> None:
    assert await probe.statuses() == [200] * 2 * CALLS
    assert probe.pings == 1

    probe.clock.advance(READY_CACHE_SECONDS)
    assert await probe.statuses() == [200] * 2 * CALLS
    assert probe.pings == 2


async def test_a_failing_database_is_not_asked_more_often(probe: Probe) -> None:
    probe.database_down = True

    assert await probe.statuses() == [503] * 2 * CALLS
    assert probe.pings == 1

    probe.clock.advance(READY_CACHE_SECONDS)
    probe.database_down = False
    assert await probe.statuses() == [200] * 2 * CALLS
    assert probe.pings == 2
