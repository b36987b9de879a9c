"""Whatever the JWKS endpoint answers and whatever a token's header says, verification either
finds a caller or raises Unauthenticated (→ 401); nothing else escapes. Unusable entries in a
JWKS do not hide the usable ones beside them."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.auth import CallerVerifier, JwksCache, Unauthenticated, UserCaller
from tests.standins.user_tokens import UserTokens

ISSUER = "https://project.supabase.test/auth/v1"
ALICE = "00000000-0000-0000-0000-00000000a11c"
tokens = UserTokens(issuer=ISSUER)
GOOD_ENTRY: dict[str, Any] = tokens.jwks()["keys"][0]
JWK_FIELDS = ["kty", "kid", "alg", "crv", "x", "y", "n", "e", "d", "k", "use", "keys", "oth"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(
        [
            "EC",
            "RSA",
            "oct",
            "OKP",
            "ES256",
            "RS256",
            "HS256",
            "none",
            "P-256",
            "P-384",
            "Ed25519",
            tokens.kid,
            "AQAB",
            GOOD_ENTRY["x"],
            GOOD_ENTRY["y"],
        ]
    ),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(JWK_FIELDS), children, max_size=6)
    ),
    max_leaves=24,
)
# Entries close to real keys: a real key's fields with some replaced, dropped or added.
near_keys = st.builds(
    lambda drop, extra: {k: v for k, v in GOOD_ENTRY.items() if k not in drop} | extra,
    st.sets(st.sampled_from(sorted(GOOD_ENTRY))),
    st.dictionaries(st.sampled_from(JWK_FIELDS), json_values, max_size=3),
)
answers = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda keys: json.dumps({"keys": keys}).encode(),
        st.one_of(json_values, st.lists(st.one_of(near_keys, json_values), max_size=4)),
    ),
    st.binary(max_size=100),
    st.builds(lambda depth: b'{"keys": ' + b"[" * depth, st.integers(1, 20_000)),
)


def _segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _token(header: object, payload: object) -> str:
    """A token with the given header and payload and a signature that cannot verify."""
    return f"{_segment(json.dumps(header).encode())}.{_segment(json.dumps(payload).encode())}.c2ln"


async def _verify_against(answer: bytes, token: str) -> UserCaller | Unauthenticated:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=answer))
    async with httpx.AsyncClient(transport=transport) as http:
        verifier = CallerVerifier(
            trusted_tokens=(),
            issuer=ISSUER,
            jwt_secret=None,
            jwks=JwksCache(f"{ISSUER}/.well-known/jwks.json", http),
        )
        try:
            caller = await verifier.verify(token)
        except Unauthenticated as refused:
            return refused
    assert isinstance(caller, UserCaller)
    return caller


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers)
async def test_any_jwks_answer_verifies_or_refuses(answer: bytes) -> None:
    await _verify_against(answer, tokens.mint(ALICE))


@pytest.mark.parametrize(
    "junk",
    [
        5,
        "key",
        None,
        {},
        {"kty": "EC"},
        {"kty": "EC", "kid": "other", "x": 5},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": ["EC"], "kid": tokens.kid},
        {"kty": "EC", "kid": {"a": 1}},
    ],
)
async def test_unusable_entries_do_not_hide_the_good_key(junk: Any) -> None:
    answer = json.dumps({"keys": [junk, GOOD_ENTRY, junk]}).encode()

    caller = await _verify_against(answer, tokens.mint(ALICE))

    assert isinstance(caller, UserCaller)


def _private_jwk(kind: str) -> dict[str, Any]:
    if kind == "EC":
        private = jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()))
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private = jwt.algorithms.RSAAlgorithm.to_jwk(key)
    entry: dict[str, Any] = json.loads(private)
    return entry | {"kid": "published-by-mistake"}


@pytest.mark.parametrize("kind", ["EC", "RSA"])
async def test_published_private_keys_are_ignored(kind: str) -> None:
    private = _private_jwk(kind)
    answer = json.dumps({"keys": [private, GOOD_ENTRY]}).encode()
    header = {"alg": "ES256" if kind == "EC" else "RS256", "kid": private["kid"]}
    naming_the_private_key = _token(header, {"sub": ALICE})

    refused = await _verify_against(answer, naming_the_private_key)
    accepted = await _verify_against(answer, tokens.mint(ALICE))

    assert isinstance(refused, Unauthenticated)
    assert isinstance(accepted, UserCaller)


token_algorithms = st.sampled_from(["ES256", "RS256", "HS256", "none", "ES384"])
header_objects = st.fixed_dictionaries(
    {"alg": st.one_of(token_algorithms, json_values)},
    optional={
        "kid": st.one_of(st.just(tokens.kid), json_values),
        "typ": json_values,
        "b64": json_values,
        "crit": json_values,
        "jwk": json_values,
    },
)
headers = st.one_of(
    header_objects.map(lambda h: json.dumps(h).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40),
    st.builds(lambda depth: b'{"kid": ' + b"[" * depth, st.integers(1, 5_000)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(header=headers, payload=json_values)
async def test_any_token_header_verifies_or_refuses(header: bytes, payload: Any) -> None:
    token = f"{_segment(header)}.{_segment(json.dumps(payload).encode())}.c2lnbmF0dXJl"

    result = await _verify_against(json.dumps(tokens.jwks()).encode(), token)

    assert isinstance(result, Unauthenticated)
