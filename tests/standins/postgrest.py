"""A PostgREST-RPC stand-in: `POST /rest/v1/rpc/<fn>` runs `public.<fn>` on a real database.

Faithful where the reconciler depends on it: the `apikey` header must be a known key; the
`Authorization: Bearer <JWT>` header picks the database role (`SET LOCAL ROLE`, so grants are
really enforced) and `request.jwt.claims`; arguments are matched by name, as PostgREST does with
`json_to_record`; errors come back in PostgREST's body shape and status codes.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import jwt
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

JWT_SECRET = "stand-in-jwt-secret-with-at-least-32-bytes!"


def make_key(role: str, secret: str = JWT_SECRET, **claims: Any) -> str:
    """An API key as Supabase issues them: an HS256 JWT whose `role` claim is the DB role."""
    return jwt.encode({"role": role, "iss": "supabase", **claims}, secret, algorithm="HS256")


SERVICE_ROLE_KEY = make_key("service_role")
ANON_KEY = make_key("anon")


def _error(status: int, code: str, message: str, details: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"code": code, "details": details, "hint": None, "message": message}, status_code=status
    )


_STATUS_BY_SQLSTATE = {"42501": 403, "42883": 404, "P0001": 400}


@dataclass
class PostgrestStandIn:
    database_url: str
    api_keys: frozenset[str] = frozenset({SERVICE_ROLE_KEY, ANON_KEY})
    jwt_secret: str = JWT_SECRET
    calls: Counter[str] = field(default_factory=Counter)
    available: bool = True
    # Supabase Auth's published signing keys: served at /auth/v1/.well-known/jwks.json and
    # used to verify asymmetric user JWTs, as the real gateway does.
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})

    def app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:  # a server stopped by cancellation closes its pool too
                await self._close()

        return Starlette(
            routes=[
                Route("/rest/v1/rpc/{function}", self._rpc, methods=["POST"]),
                Route("/auth/v1/.well-known/jwks.json", self._jwks, methods=["GET"]),
            ],
            lifespan=lifespan,
        )

    _pool: asyncpg.Pool | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.database_url, min_size=0, max_size=20)
        return self._pool

    async def _close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    async def _jwks(self, _: Request) -> Response:
        return JSONResponse(self.jwks)

    def _decode(self, token: str) -> dict[str, Any]:
        header = jwt.get_unverified_header(token)
        if header.get("alg") == "HS256":
            key: Any = self.jwt_secret
        else:
            keys = {k.get("kid"): k for k in self.jwks["keys"]}
            key = jwt.PyJWK(keys[header.get("kid")]).key if header.get("kid") in keys else ""
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[str(header.get("alg"))],
            options={"verify_aud": False, "verify_iss": False},
        )
        return claims

    async def _rpc(self, request: Request) -> Response:
        function = request.path_params["function"]
        if request.headers.get("apikey") not in self.api_keys:
            return JSONResponse({"message": "Invalid API key"}, status_code=401)
        authorization = request.headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return _error(401, "PGRST302", "Anonymous access is disabled")
        try:
            claims = self._decode(authorization.removeprefix("Bearer "))
        except (jwt.PyJWTError, ValueError) as error:
            return _error(401, "PGRST301", f"JWT invalid: {error}")
        try:
            arguments = json.loads(await request.body() or b"{}")
        except ValueError:
            return _error(400, "PGRST102", "Empty or invalid json")
        except ClientDisconnect:
            # The caller died mid-request (the soak SIGKILLs replicas): nobody to answer.
            return Response(status_code=499)
        if not isinstance(arguments, dict):
            return _error(400, "PGRST102", "Arguments must be a JSON object")
        self.calls[function] += 1
        if not self.available:
            return _error(503, "PGRST001", "Database client error. Retrying the connection.")
        try:
            return await self._call(function, arguments, claims)
        except (OSError, asyncpg.InterfaceError) as error:
            return _error(503, "PGRST001", f"Database client error: {error}")

    async def _call(
        self, function: str, arguments: dict[str, Any], claims: dict[str, Any]
    ) -> Response:
        pool = await self._get_pool()
        async with pool.acquire() as conn:
            signature = await conn.fetch(
                """
                select a.name, format_type(a.type, null) as type,
                       p.prorettype = 'void'::regtype as void
                  from pg_proc p
                  join pg_namespace n on n.oid = p.pronamespace
                  left join lateral unnest(p.proargnames, p.proargtypes::oid[]) as a(name, type)
                    on true
                 where n.nspname = 'public' and p.proname = $1
                """,
                function,
            )
            # A function without arguments comes back as one row with a null name.
            params = [row for row in signature if row["name"] is not None]
            names = {row["name"] for row in params}
            if not signature or names != set(arguments):
                return _error(
                    404,
                    "PGRST202",
                    f"Could not find the function public.{function}"
                    f"({', '.join(sorted(arguments))}) in the schema cache",
                )
            columns = ", ".join(f'"{row["name"]}" {row["type"]}' for row in params)
            named = ", ".join(f'"{row["name"]}" => _."{row["name"]}"' for row in params)
            source = f"json_to_record($1::json) as _({columns})"
            if not params:  # json_to_record needs a column; without arguments $1 goes unused
                source = "(select $1::json) as _"
            # Identifiers come from pg_proc and are quoted; values travel as one bound parameter.
            statement = f'select to_json(public."{function}"({named}))::text from {source}'  # noqa: S608
            try:
                async with conn.transaction():
                    await conn.execute(f'set local role "{claims.get("role", "anon")}"')
                    await conn.execute(
                        "select set_config('request.jwt.claims', $1, true)", json.dumps(claims)
                    )
                    result = await conn.fetchval(statement, json.dumps(arguments))
            except asyncpg.PostgresError as error:
                state = str(error.sqlstate)
                status = _STATUS_BY_SQLSTATE.get(state, 400 if state.startswith("22") else 500)
                return _error(status, state, str(error), getattr(error, "detail", None))
        if signature[0]["void"]:
            return Response(status_code=204)
        return Response(result if result is not None else "null", media_type="application/json")
