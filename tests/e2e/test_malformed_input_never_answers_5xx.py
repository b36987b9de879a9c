"""The check endpoint answers malformed input with a 4xx and writes nothing: generated bodies
(JSON of any shape, raw bytes, nesting deep enough to exhaust the JSON decoder's recursion),
forged token headers, and a JWKS endpoint answering junk (the token is then refused, 401)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import new_project
from tests.standins.user_tokens import UserTokens

ALICE = "00000000-0000-0000-0000-00000000a11c"
JOB = J.malformed_input_job
# Deeper than the JSON decoder's recursion limit, yet under the 64 KiB body cap; and over it.
DEEP = 60_000
DEEPER_THAN_THE_CAP = 100_000


@dataclass
class JwksStandIn:
    """Supabase Auth's JWKS route on loopback, answering whatever bytes a test sets."""

    answer: bytes = b'{"keys": []}'

    def app(self) -> Starlette:
        async def jwks(_: Request) -> Response:
            return Response(self.answer, media_type="application/json")

        return Starlette(routes=[Route("/auth/v1/.well-known/jwks.json", jwks)])


@dataclass
class Target:
    client: httpx.AsyncClient
    db: asyncpg.Connection
    simulator: RunwareSimulator
    jwks: JwksStandIn
    tokens: UserTokens
    project: UUID

    async def check(self, body: bytes, token: str = ADMIN_TOKEN) -> httpx.Response:
        return await self.client.post(
            "/check-clips-status",
            content=body,
            headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
        )

    async def state(self) -> tuple[Any, ...]:
        row = await self.db.fetchrow(
            "select (select xmin::text from public.projects where id = $1),"
            " (select count(*) from reconciler.jobs)",
            self.project,
        )
        assert row is not None
        return (*row, self.simulator.counters.requests_total)


@pytest.fixture
async def target(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> AsyncIterator[Target]:
    simulator.add_job(JOB, duration=0, outcome="success")
    project = await new_project(db, {JOB: "pending"})
    jwks = JwksStandIn()
    async with serve(jwks.app()) as supabase_url:
        # Every unknown kid refetches, so each test's junk answer is what the service reads.
        env = service_env | {
            "SUPABASE_URL": supabase_url,
            "RECONCILER_JWKS_MIN_REFETCH_SECONDS": "0",
        }
        tokens = UserTokens(issuer=f"{supabase_url}/auth/v1")
        async with run_service(env) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Target(client, db, simulator, jwks, tokens, project)


# --- Bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * DEEP, 400),
        (b'{"project_id": ' * (DEEP // 20), 400),
        (b'{"project_id": ' + b"[" * DEEP, 400),
        (b"[" * DEEPER_THAN_THE_CAP, 413),
    ],
    ids=["arrays", "objects", "under-project-id", "over-the-cap"],
)
async def test_deeply_nested_bodies_are_refused_with_4xx(
    target: Target, body: bytes, status: int
) -> None:
    before = await target.state()

    response = await target.check(body)

    assert response.status_code == status, response.text
    assert response.json()["success"] is False
    assert await target.state() == before


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=40)
    | st.uuids().map(str),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["project_id", "id", "clips", ""]), children, max_size=3)
    ),
    max_leaves=20,
)


def _deep(opening: str, depth: int) -> bytes:
    return (opening * depth).encode()


bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda v: json.dumps({"project_id": v}).encode(), json_values),
    st.binary(max_size=200),
    st.builds(
        _deep,
        st.sampled_from(["[", '{"a":', '{"project_id":', "[{}, "]),
        st.integers(min_value=1, max_value=DEEPER_THAN_THE_CAP // 5),
    ),
    st.builds(
        lambda raw, cut: raw[:cut],
        json_values.map(lambda v: json.dumps(v).encode()),
        st.integers(min_value=0, max_value=40),
    ),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies)
async def test_generated_bodies_never_answer_5xx(target: Target, body: bytes) -> None:
    before = await target.state()

    response = await target.check(body)

    assert 400 <= response.status_code < 500, response.text
    assert response.json()["success"] is False
    assert await target.state() == before


# --- Tokens and the JWKS behind them -------------------------------------------------------------


def _segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [
        {"alg": "ES256", "kid": {"a": 1}},
        {"alg": "ES256", "kid": ["k"]},
        {"alg": "ES256", "kid": 5},
        {"alg": ["ES256"], "kid": "k"},
        {"alg": {"ES256": 1}},
        {"alg": "RS256", "kid": None},
        {"alg": "none"},
    ],
    ids=["kid-object", "kid-list", "kid-number", "alg-list", "alg-object", "rs256", "none"],
)
async def test_forged_token_headers_are_401(target: Target, header: dict[str, Any]) -> None:
    target.jwks.answer = json.dumps(target.tokens.jwks()).encode()
    token = f"{_segment(header)}.{_segment({'sub': ALICE})}.c2ln"
    before = await target.state()

    response = await target.check(json.dumps({"project_id": str(target.project)}).encode(), token)

    assert response.status_code == 401, response.text
    assert await target.state() == before


@pytest.mark.parametrize(
    "answer",
    [
        b'{"keys": 5}',
        b'{"keys": [5]}',
        b'{"keys": {"kid": "test-key-1"}}',
        b'{"keys": [{"kid": "test-key-1", "kty": "EC", "x": 5, "y": [], "crv": "P-256"}]}',
        b'{"keys": [{"kid": "test-key-1", "kty": "EC", "alg": ["ES256"]}]}',
        b'{"keys": [{"kid": "test-key-1", "kty": "oct", "k": "c2VjcmV0"}]}',
        b'{"keys": [{"kid": {"a": 1}, "kty": "EC"}]}',
        b"[1, 2]",
        b"null",
        b'"keys"',
        b"not json",
        b"\xff\xfe",
        b"[" * DEEP,
        b'{"keys": ' + b"[" * DEEP,
    ],
    ids=[
        "keys-number",
        "keys-of-numbers",
        "keys-object",
        "key-with-junk-coordinates",
        "key-with-list-alg",
        "symmetric-key",
        "kid-object",
        "list",
        "null",
        "string",
        "text",
        "bytes",
        "deep",
        "deep-keys",
    ],
)
async def test_junk_jwks_refuses_the_user_token_with_401(target: Target, answer: bytes) -> None:
    target.jwks.answer = answer
    before = await target.state()

    response = await target.check(
        json.dumps({"project_id": str(target.project)}).encode(), target.tokens.mint(ALICE)
    )

    assert response.status_code == 401, response.text
    assert response.json() == {"success": False, "error": "Unauthorized"}
    assert await target.state() == before
