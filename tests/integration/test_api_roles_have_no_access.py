"""I8: anon and authenticated can neither run the reconciler's functions nor read its tables;
service_role can run the functions. Checked both in SQL and through the PostgREST stand-in."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from reconciler.store.calls import CATALOGUE
from tests.standins.postgrest import ANON_KEY, SERVICE_ROLE_KEY, PostgrestStandIn, make_key

# The service's own catalogue, plus what released migrations created that this release no
# longer calls: kept (not dropped) because replicas of the previous release still call it
# while a rolling upgrade is under way. Still locked down like the rest.
NO_LONGER_CALLED = ["reconciler_job_states"]
FUNCTIONS = [function.name for function in CATALOGUE] + NO_LONGER_CALLED
# The one function a signed-in user may call: SECURITY INVOKER, so it can only report what the
# app's row-level security already shows that user.
USER_CALLABLE = ["reconciler_caller_can_see_project(uuid)"]
# Since v2 nothing of ours is evaluated as the app's roles: the trigger function is SECURITY
# DEFINER, and there is no index of ours on projects.
EVERYONE_CALLABLE: list[str] = []


async def test_every_reconciler_function_is_listed(db: asyncpg.Connection) -> None:
    names = await db.fetch(
        "select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.proname like 'reconciler%'"
    )
    assert sorted(r["proname"] for r in names) == sorted(FUNCTIONS)


@pytest.mark.parametrize("role", ["anon", "authenticated", "public"])
async def test_api_roles_cannot_execute(db: asyncpg.Connection, role: str) -> None:
    if role == "public":
        # A role with no grants of its own holds exactly what PUBLIC holds.
        await db.execute(
            "do $$ begin if not exists (select from pg_roles where rolname = 'only_public')"
            " then create role only_public nologin; end if; end $$"
        )
    rows = await db.fetch(
        "select p.oid::regprocedure::text as fn,"
        " has_function_privilege($1, p.oid, 'execute') as allowed"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where (n.nspname = 'public' and p.proname like 'reconciler%')"
        "    or n.nspname = 'reconciler'",
        role if role != "public" else "only_public",
    )
    assert rows
    allowed = [r["fn"] for r in rows if r["allowed"]]
    expected = EVERYONE_CALLABLE + (USER_CALLABLE if role == "authenticated" else [])
    assert sorted(allowed) == sorted(expected)


async def test_the_user_callable_function_runs_as_the_caller(db: asyncpg.Connection) -> None:
    definer = await db.fetchval(
        "select prosecdef from pg_proc where proname = 'reconciler_caller_can_see_project'"
    )
    assert definer is False


async def test_service_role_can_execute(db: asyncpg.Connection) -> None:
    rows = await db.fetch(
        "select p.proname, has_function_privilege('service_role', p.oid, 'execute') as allowed"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.proname like 'reconciler%'"
    )
    assert all(r["allowed"] for r in rows)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_api_roles_cannot_read_the_private_schema(db: asyncpg.Connection, role: str) -> None:
    async with db.transaction():
        await db.execute(f"set local role {role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.fetch("select * from reconciler.jobs")
    async with db.transaction():
        await db.execute(f"set local role {role}")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.fetch("select * from reconciler.parked_results")
    for table in ("archive_tasks", "archive_clips", "archive_settings"):
        async with db.transaction():
            await db.execute(f"set local role {role}")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await db.fetch(f"select * from reconciler.{table}")  # noqa: S608 (fixed names)


@pytest.mark.parametrize(
    "key", [ANON_KEY, make_key("authenticated", sub="00000000-0000-0000-0000-000000000001")]
)
async def test_rpc_as_api_role_is_refused(
    postgrest: tuple[PostgrestStandIn, str], key: str
) -> None:
    _, url = postgrest
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/rest/v1/rpc/reconciler_job_states",
            json={"p_job_ids": ["x"]},
            headers={"apikey": ANON_KEY, "Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 403
    assert response.json()["code"] == "42501"


async def test_rpc_as_service_role_is_allowed(postgrest: tuple[PostgrestStandIn, str]) -> None:
    _, url = postgrest
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/rest/v1/rpc/reconciler_job_states",
            json={"p_job_ids": ["x"]},
            headers={"apikey": SERVICE_ROLE_KEY, "Authorization": f"Bearer {SERVICE_ROLE_KEY}"},
        )
    assert response.status_code == 200
    assert response.json() == {}
