"""A refused token is charged to its sender's address only when it could be a guess: not a
trusted token and not a JWT whose signature verifies. A user's expired or wrong-audience token
was signed by the project, and users behind one address must not spend each other's budget."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from reconciler.auth import CallerVerifier, JwksCache, Unauthenticated
from tests.standins.user_tokens import UserTokens

ISSUER = "https://project.supabase.test/auth/v1"
ALICE = "00000000-0000-0000-0000-00000000a11c"
TRUSTED = "trusted-backend-key-0123456789abcdef01"

tokens = UserTokens(issuer=ISSUER)


@pytest.fixture
async def verifier() -> AsyncIterator[CallerVerifier]:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=tokens.jwks()))
    async with httpx.AsyncClient(transport=transport) as http:
        yield CallerVerifier(
            trusted_tokens=(TRUSTED,),
            issuer=ISSUER,
            jwt_secret=None,
            jwks=JwksCache(f"{ISSUER}/.well-known/jwks.json", http),
            leeway_seconds=0,
        )


async def _refusal(verifier: CallerVerifier, token: str | None) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as refused:
        await verifier.verify(token)
    return refused.value


@pytest.mark.parametrize(
    "token",
    [
        "not-a-token-at-all-but-long-enough-0123",
        TRUSTED[:-1] + "x",
        tokens.mint(ALICE, foreign_key=True),
        tokens.mint(ALICE)[:-4] + "AAAA",
    ],
    ids=["junk", "near-miss trusted key", "foreign signature", "tampered signature"],
)
async def test_tokens_that_could_be_guesses_are_charged(
    verifier: CallerVerifier, token: str
) -> None:
    assert (await _refusal(verifier, token)).guess is True


@pytest.mark.parametrize(
    "token",
    [None, "", tokens.mint(ALICE, expires_in=-3600), tokens.mint(ALICE, aud="anon")],
    ids=["none", "empty", "expired", "wrong audience"],
)
async def test_tokens_signed_by_the_project_or_absent_are_not_charged(
    verifier: CallerVerifier, token: str | None
) -> None:
    assert (await _refusal(verifier, token)).guess is False
