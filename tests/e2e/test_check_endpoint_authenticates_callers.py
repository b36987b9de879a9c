"""Caller authentication on the check endpoint, on both transports, with the app's RLS:
the service key sees everything; a user sees only what row-level security shows them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg
import httpx
import jwt
import pytest

from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ServiceFactory
from tests.projects import new_project, row_version
from tests.standins.postgrest import JWT_SECRET, SERVICE_ROLE_KEY, PostgrestStandIn
from tests.standins.user_tokens import UserTokens

ALICE = "00000000-0000-0000-0000-00000000a11c"
BOB = "00000000-0000-0000-0000-000000000b0b"
# The project's JWT secret: the one Supabase signs its API keys and HS256 user tokens with.
HS256_SECRET = JWT_SECRET


@dataclass(frozen=True)
class AuthWorld:
    url: str
    service_token: str
    tokens: UserTokens
    alice_project: UUID
    bob_project: UUID

    async def check(self, project: UUID, token: str | None) -> httpx.Response:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            return await client.post(
                "/check-clips-status", json={"project_id": str(project)}, headers=headers
            )


@pytest.fixture(params=["postgres", "supabase"])
async def world(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> AsyncIterator[AuthWorld]:
    simulator.add_job(J.alice_job, duration=0, outcome="success")
    simulator.add_job(J.bob_job, duration=0, outcome="success")
    alice_project = await new_project(db, {J.alice_job: "pending"}, owner=UUID(ALICE))
    bob_project = await new_project(db, {J.bob_job: "pending"}, owner=UUID(BOB))
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as supabase_url:
        tokens = UserTokens(issuer=f"{supabase_url}/auth/v1")
        stand_in.jwks = tokens.jwks()
        env = service_env | {"SUPABASE_URL": supabase_url, "SUPABASE_JWT_SECRET": HS256_SECRET}
        if request.param == "supabase":
            env = {k: v for k, v in env.items() if k != "DATABASE_URL"}
            env["SUPABASE_SERVICE_ROLE_KEY"] = SERVICE_ROLE_KEY
            service_token = SERVICE_ROLE_KEY
        else:
            service_token = env["RECONCILER_ADMIN_TOKEN"]
        async with run_service(env) as url:
            yield AuthWorld(url, service_token, tokens, alice_project, bob_project)


async def test_service_key_checks_any_project(world: AuthWorld) -> None:
    for project in (world.alice_project, world.bob_project):
        response = await world.check(project, world.service_token)
        assert response.status_code == 200
        assert response.json()["completed"] == 1


async def test_user_checks_own_project(world: AuthWorld, db: asyncpg.Connection) -> None:
    response = await world.check(world.alice_project, world.tokens.mint(ALICE))
    assert response.status_code == 200
    assert response.json()["completed"] == 1


async def test_someone_elses_project_is_404_like_a_missing_one(
    world: AuthWorld, db: asyncpg.Connection, simulator: RunwareSimulator
) -> None:
    before = await row_version(db, world.bob_project)
    token = world.tokens.mint(ALICE)

    theirs = await world.check(world.bob_project, token)
    missing = await world.check(uuid4(), token)

    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"success": False, "error": "Project not found"}
    assert await row_version(db, world.bob_project) == before
    assert simulator.counters.requests_total == 0


@pytest.mark.parametrize(
    "case", ["expired", "wrong-aud", "wrong-iss", "bad-signature", "none", "malformed", "garbage"]
)
async def test_bad_credentials_are_401(
    world: AuthWorld, case: str, simulator: RunwareSimulator
) -> None:
    tokens = world.tokens
    token = {
        "expired": tokens.mint(ALICE, expires_in=-60),
        "wrong-aud": tokens.mint(ALICE, aud="anon"),
        "wrong-iss": tokens.mint(ALICE, iss="https://other.supabase.co/auth/v1"),
        "bad-signature": tokens.mint(ALICE, foreign_key=True),
        "none": None,
        "malformed": "abc.def",
        "garbage": "not a token at all",
    }[case]

    response = await world.check(world.alice_project, token)

    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "Unauthorized"}
    assert simulator.counters.requests_total == 0


async def test_hs256_user_token_with_the_project_secret(world: AuthWorld) -> None:
    claims = {
        "sub": ALICE,
        "aud": "authenticated",
        "iss": world.tokens.issuer,
        "role": "authenticated",
    }
    good = jwt.encode(claims | {"exp": 4102444800}, HS256_SECRET, algorithm="HS256")
    forged = jwt.encode(
        claims | {"exp": 4102444800}, "some-other-secret-0123456789abcdef", algorithm="HS256"
    )

    assert (await world.check(world.alice_project, good)).status_code == 200
    assert (await world.check(world.alice_project, forged)).status_code == 401
