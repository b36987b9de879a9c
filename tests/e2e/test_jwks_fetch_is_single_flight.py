"""Forged tokens naming an unknown key id cost at most one JWKS fetch per refetch interval,
however many arrive at once and whether or not the JWKS endpoint answers; known keys are still
refreshed when their TTL runs out, and kept when that refresh fails."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.auth import Caller, CallerVerifier, JwksCache, Unauthenticated, UserCaller
from reconciler.local.serving import serve
from tests.fake_clock import FakeClock
from tests.plugin import ServiceFactory
from tests.standins.user_tokens import UserTokens

ISSUER = "https://project.supabase.test/auth/v1"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
MIN_REFETCH_SECONDS = 30.0
TTL_SECONDS = 600.0
BURST = 50
ALICE = "00000000-0000-0000-0000-00000000a11c"


@dataclass
class JwksEndpoint:
    """Counts fetches and holds each one until released, so that callers really overlap."""

    tokens: UserTokens = field(repr=False)
    failing: bool = False
    fetches: int = 0
    entered: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    release: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        self.fetches += 1
        self.entered.set()
        await self.release.wait()
        if self.failing:
            return httpx.Response(503, text="upstream unavailable")
        return httpx.Response(200, json=self.tokens.jwks())


@dataclass
class Verification:
    endpoint: JwksEndpoint
    clock: FakeClock
    verifier: CallerVerifier

    async def burst(self, tokens: list[str]) -> list[Caller | BaseException]:
        """Verify all tokens at once; no fetch answers before every verification has begun."""
        self.endpoint.entered.clear()
        self.endpoint.release.clear()
        verifications = asyncio.gather(
            *(self.verifier.verify(t) for t in tokens), return_exceptions=True
        )
        fetch_started = asyncio.ensure_future(self.endpoint.entered.wait())
        # No fetch at all is a possible outcome too: then the verifications finish first.
        either: list[asyncio.Future[Any]] = [verifications, fetch_started]
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        self.endpoint.release.set()
        fetch_started.cancel()
        results: list[Caller | BaseException] = await verifications
        crashed = [r for r in results if isinstance(r, BaseException) and not _refused(r)]
        assert not crashed
        return results


def _refused(result: object) -> bool:
    return isinstance(result, Unauthenticated)


@pytest.fixture
async def verification() -> AsyncIterator[Verification]:
    tokens = UserTokens(issuer=ISSUER)
    endpoint = JwksEndpoint(tokens)
    clock = FakeClock()
    async with httpx.AsyncClient(transport=httpx.MockTransport(endpoint.handle)) as http:
        jwks = JwksCache(
            JWKS_URL,
            http,
            min_refetch_seconds=MIN_REFETCH_SECONDS,
            ttl_seconds=TTL_SECONDS,
            clock=clock,
        )
        verifier = CallerVerifier(trusted_tokens=(), issuer=ISSUER, jwt_secret=None, jwks=jwks)
        yield Verification(endpoint, clock, verifier)


def forged(tokens: UserTokens) -> list[str]:
    return [tokens.mint(ALICE, foreign_key=True, kid=f"forged-{uuid4()}") for _ in range(BURST)]


async def test_concurrent_unknown_kids_share_one_fetch(verification: Verification) -> None:
    tokens = verification.endpoint.tokens

    first = await verification.burst(forged(tokens))
    verification.clock.advance(MIN_REFETCH_SECONDS - 1)
    second = await verification.burst(forged(tokens))

    assert all(_refused(r) for r in first + second)
    assert verification.endpoint.fetches == 1


async def test_unknown_kids_refetch_once_the_interval_has_passed(
    verification: Verification,
) -> None:
    tokens = verification.endpoint.tokens
    await verification.burst(forged(tokens))

    verification.clock.advance(MIN_REFETCH_SECONDS)
    refused = await verification.burst(forged(tokens))

    assert all(_refused(r) for r in refused)
    assert verification.endpoint.fetches == 2


async def test_a_failing_endpoint_is_not_hammered(verification: Verification) -> None:
    verification.endpoint.failing = True
    tokens = verification.endpoint.tokens

    first = await verification.burst(forged(tokens))
    assert verification.endpoint.fetches == 1
    verification.clock.advance(MIN_REFETCH_SECONDS - 1)
    genuine = await verification.burst([tokens.mint(ALICE) for _ in range(BURST)])
    assert verification.endpoint.fetches == 1
    verification.clock.advance(1)
    third = await verification.burst(forged(tokens))

    assert all(_refused(r) for r in first + genuine + third)
    assert verification.endpoint.fetches == 2


async def test_known_keys_refresh_after_the_ttl_and_survive_a_failed_refresh(
    verification: Verification,
) -> None:
    tokens = verification.endpoint.tokens
    genuine = [tokens.mint(ALICE) for _ in range(BURST)]

    fresh = await verification.burst(genuine)
    verification.clock.advance(TTL_SECONDS - 1)
    cached = await verification.burst(genuine)
    assert verification.endpoint.fetches == 1

    verification.clock.advance(2)
    verification.endpoint.failing = True
    stale = await verification.burst(genuine)

    assert verification.endpoint.fetches == 2
    assert all(isinstance(r, UserCaller) for r in fresh + cached + stale)


# --- Through the running service: the settings reach the cache ----------------------------------


@dataclass
class CountingJwksServer:
    """Supabase Auth's JWKS route on loopback, answering 503 and counting requests."""

    fetches: int = 0

    def app(self) -> Starlette:
        async def jwks(_: Request) -> Response:
            self.fetches += 1
            return JSONResponse({"message": "unavailable"}, status_code=503)

        return Starlette(routes=[Route("/auth/v1/.well-known/jwks.json", jwks)])


SEQUENTIAL_REQUESTS = 5


# A day: no refetch can be due during the test, whatever the machine's speed. Zero: every
# unknown kid may refetch, so each request is seen by the JWKS server.
@pytest.mark.parametrize(
    ("min_refetch", "expected_fetches"),
    [("86400", 1), ("0", SEQUENTIAL_REQUESTS)],
    ids=["a-day", "zero"],
)
async def test_service_honours_the_refetch_setting(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    min_refetch: str,
    expected_fetches: int,
) -> None:
    server = CountingJwksServer()
    async with serve(server.app()) as supabase_url:
        tokens = UserTokens(issuer=f"{supabase_url}/auth/v1")
        env = service_env | {
            "SUPABASE_URL": supabase_url,
            "RECONCILER_JWKS_MIN_REFETCH_SECONDS": min_refetch,
        }
        async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            statuses = [
                (
                    await client.post(
                        "/check-clips-status",
                        json={"project_id": str(uuid4())},
                        headers={"Authorization": f"Bearer {token}"},
                    )
                ).status_code
                for token in forged(tokens)[:SEQUENTIAL_REQUESTS]
            ]

    assert statuses == [401] * SEQUENTIAL_REQUESTS
    assert server.fetches == expected_fetches
