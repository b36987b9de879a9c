"""The real @supabase/supabase-js (npm) calls the service as a browser app would: the CORS
preflight a browser sends first, then `functions.invoke('check-clips-status', …)` with the
client's functions URL pointed at the service and a signed-in user's token."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ServiceFactory
from tests.projects import new_project
from tests.standins.postgrest import ANON_KEY, PostgrestStandIn
from tests.standins.user_tokens import UserTokens

JS_DIR = Path(__file__).parents[1] / "js"
ORIGIN = "https://app.example.com"
USER = "00000000-0000-0000-0000-0000000000aa"


async def _node(*args: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js is required (scripts/setup installs the JS test deps)"
    process = await asyncio.create_subprocess_exec(
        node,
        str(JS_DIR / "invoke_check.mjs"),
        *args,
        cwd=JS_DIR,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


@pytest.fixture
async def browser_world(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
    simulator: RunwareSimulator,
) -> AsyncIterator[tuple[str, UserTokens]]:
    stand_in = PostgrestStandIn(database_url)  # plays Supabase Auth: serves the JWKS
    async with serve(stand_in.app()) as supabase_url:
        tokens = UserTokens(issuer=f"{supabase_url}/auth/v1")
        stand_in.jwks = tokens.jwks()
        env = service_env | {"SUPABASE_URL": supabase_url, "RECONCILER_CORS_ORIGINS": ORIGIN}
        async with run_service(env) as url:
            yield url, tokens


async def _own_project(db: asyncpg.Connection, simulator: RunwareSimulator) -> UUID:
    simulator.add_job(J.js_job, duration=0, outcome="success")
    return await new_project(db, {J.js_job: "pending", J.js_old: "failed"}, owner=UUID(USER))


async def test_preflight_then_invoke(
    browser_world: tuple[str, UserTokens], db: asyncpg.Connection, simulator: RunwareSimulator
) -> None:
    url, tokens = browser_world
    project = await _own_project(db, simulator)
    async with httpx.AsyncClient(base_url=url) as client:
        preflight = await client.options(
            "/functions/v1/check-clips-status",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": (
                    "authorization, x-client-info, apikey, content-type"
                ),
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = {h.strip() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "x-client-info", "apikey", "content-type"} <= allowed

    result = await _node(url, ANON_KEY, tokens.mint(USER), str(project))

    assert result["error"] is None, result
    data = result["data"]
    assert data["success"] is True
    assert data["clips"] == {J.js_job: simulator.truth()[J.js_job], J.js_old: "failed"}
    assert {d["jobId"]: d["status"] for d in data["details"]} == {
        J.js_job: "completed",
        J.js_old: "failed",
    }


async def test_invoke_with_an_expired_token_is_401(
    browser_world: tuple[str, UserTokens], db: asyncpg.Connection, simulator: RunwareSimulator
) -> None:
    url, tokens = browser_world
    project = await _own_project(db, simulator)

    # Expired well beyond the clock-skew leeway (RECONCILER_JWT_LEEWAY_SECONDS, 30 s).
    result = await _node(url, ANON_KEY, tokens.mint(USER, expires_in=-120), str(project))

    assert result["error"] == "FunctionsHttpError"
    assert result["status"] == 401
    assert result["body"] == {"success": False, "error": "Unauthorized"}


async def test_preflight_from_an_unknown_origin_is_refused(
    browser_world: tuple[str, UserTokens],
) -> None:
    url, _ = browser_world
    async with httpx.AsyncClient(base_url=url) as client:
        preflight = await client.options(
            "/check-clips-status",
            headers={
                "Origin": "https://evil.example.net",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
