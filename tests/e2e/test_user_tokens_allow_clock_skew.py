"""A user's token minted by a clock a little ahead (or checked a little late) is accepted, as
PostgREST accepts it; beyond the leeway it is refused."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from uuid import uuid4

import httpx
import jwt
import pytest

from reconciler.auth import CallerVerifier, JwksCache, Unauthenticated, UserCaller
from tests.plugin import ServiceFactory
from tests.standins.user_tokens import UserTokens

ISSUER = "https://project.supabase.test/auth/v1"
LEEWAY_SECONDS = 30.0
ALICE = "00000000-0000-0000-0000-00000000a11c"
HS256_SECRET = "project-jwt-secret-0123456789abcdef0123"

tokens = UserTokens(issuer=ISSUER)


@pytest.fixture
async def verifier() -> AsyncIterator[CallerVerifier]:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=tokens.jwks()))
    async with httpx.AsyncClient(transport=transport) as http:
        yield CallerVerifier(
            trusted_tokens=(),
            issuer=ISSUER,
            jwt_secret=None,
            jwks=JwksCache(f"{ISSUER}/.well-known/jwks.json", http),
            leeway_seconds=LEEWAY_SECONDS,
        )


# 1 s is the skew the review saw refused; 20 s is refused without leeway whatever the second
# the token is minted in (its iat is truncated to whole seconds).
@pytest.mark.parametrize("ahead", [1, 20])
async def test_iat_and_nbf_slightly_ahead_are_accepted(
    verifier: CallerVerifier, ahead: float
) -> None:
    token = tokens.mint(ALICE, issued_in=ahead, not_before_in=ahead)

    caller = await verifier.verify(token)

    assert isinstance(caller, UserCaller)
    assert caller.claims["sub"] == ALICE


async def test_exp_just_passed_is_accepted_within_the_leeway(verifier: CallerVerifier) -> None:
    caller = await verifier.verify(tokens.mint(ALICE, issued_in=-600, expires_in=-1))

    assert isinstance(caller, UserCaller)


@pytest.mark.parametrize("case", ["iat-ahead", "nbf-ahead", "expired"])
async def test_beyond_the_leeway_is_refused(verifier: CallerVerifier, case: str) -> None:
    # Minted here, not at collection: the whole suite may run between the two.
    token = {
        "iat-ahead": lambda: tokens.mint(ALICE, issued_in=120),
        "nbf-ahead": lambda: tokens.mint(ALICE, not_before_in=120),
        "expired": lambda: tokens.mint(ALICE, issued_in=-600, expires_in=-120),
    }[case]()

    with pytest.raises(Unauthenticated):
        await verifier.verify(token)


# --- Through the running service: RECONCILER_JWT_LEEWAY_SECONDS reaches the verifier -----------


@pytest.mark.parametrize(
    ("leeway", "expected_status"), [(None, 404), ("0", 401)], ids=["default", "zero"]
)
async def test_service_honours_the_leeway_setting(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    leeway: str | None,
    expected_status: int,
) -> None:
    # 404, not 401: the user is authenticated and the (random) project is not theirs.
    env = service_env | {"SUPABASE_JWT_SECRET": HS256_SECRET}
    if leeway is not None:
        env["RECONCILER_JWT_LEEWAY_SECONDS"] = leeway
    now = int(time.time())
    claims = {"sub": ALICE, "aud": "authenticated", "role": "authenticated", "exp": now + 3600}
    token = jwt.encode(claims | {"iat": now + 20, "nbf": now + 20}, HS256_SECRET, algorithm="HS256")

    async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/check-clips-status",
            json={"project_id": str(uuid4())},
            headers={"Authorization": f"Bearer {token}"},
        )

    assert response.status_code == expected_status
