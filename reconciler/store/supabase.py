"""Supabase transport: every database operation is one supabase-py `rpc()` call.

PostgREST exposes only `public`, so the functions live there; their tables do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from postgrest import APIError, AsyncPostgrestClient, AsyncRPCFilterRequestBuilder
from postgrest._async.request_builder import send_with_retry
from postgrest.exceptions import APIErrorFromJSON, generate_default_error_message

from reconciler.callers import UserCaller
from reconciler.ports import StoreConflict, StoreRejected, StoreUnavailable
from reconciler.store.answers import decode_answer
from reconciler.store.calls import (
    PROJECTS_WITH_PENDING,
    REJECTED_SQLSTATE_CLASSES,
    RETRIED_SQLSTATES,
    SqlFunction,
)
from reconciler.store.functions import FunctionStore
from supabase import AsyncClient, AsyncClientOptions, acreate_client


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value) if isinstance(value, UUID) else value


def translate_error(error: Exception) -> Exception:
    if isinstance(error, APIError):
        code = error.code or ""  # PostgREST passes the SQLSTATE through as `code`
        if code.startswith(REJECTED_SQLSTATE_CLASSES):
            return StoreRejected(error.message or code)
        if code in RETRIED_SQLSTATES:
            return StoreConflict(f"PostgREST error {code}: {error.message}")
        return StoreUnavailable(f"PostgREST error {code}: {error.message}")
    return StoreUnavailable(f"PostgREST unreachable: {type(error).__name__}: {error}")


async def run_rpc(rpc: AsyncRPCFilterRequestBuilder) -> Any:
    """What postgrest-py's `execute()` does (same request, same errors), but the answer is
    decoded by `decode_answer` — a large one off the event loop — where `execute()` decodes
    every answer on the event loop."""
    response = await send_with_retry(rpc.request)
    if not response.is_success:
        try:
            body = APIErrorFromJSON.model_validate_json(response.content)
        except ValueError as error:  # not PostgREST's error shape (pydantic's ValidationError)
            raise APIError(generate_default_error_message(response)) from error
        raise APIError(dict(body))
    try:
        return await decode_answer(response.content)
    except ValueError:  # an empty body (a void function): what execute() answers
        return response.text or []


class SupabaseRpcCaller:
    def __init__(self, client: AsyncClient, http: httpx.AsyncClient, url: str, key: str) -> None:
        self._client = client
        self._http = http
        self._rest_url = f"{url.rstrip('/')}/rest/v1"
        self._api_key = key

    @classmethod
    async def connect(
        cls, url: str, service_role_key: str, *, timeout_seconds: float = 30.0
    ) -> SupabaseRpcCaller:
        # Our own httpx client: supabase-py's timeout option is deprecated, and the pool is
        # shared by every RPC for keep-alive.
        http = httpx.AsyncClient(timeout=timeout_seconds, limits=httpx.Limits(max_connections=32))
        options = AsyncClientOptions(httpx_client=http, auto_refresh_token=False)
        client = await acreate_client(url, service_role_key, options=options)
        return cls(client, http, url, service_role_key)

    @property
    def client(self) -> AsyncClient:
        return self._client

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        params = {name: _jsonable(arguments[name]) for name in function.argument_names}
        try:
            return await run_rpc(self._client.rpc(function.name, params))
        except (APIError, httpx.HTTPError) as error:
            raise translate_error(error) from error

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        # Same RPC, but PostgREST takes the role and claims from the user's JWT, so the
        # app's row-level security applies. A client per call: the token is per request.
        rest = AsyncPostgrestClient(
            self._rest_url,
            headers={"apikey": self._api_key, "Authorization": f"Bearer {user.token}"},
            http_client=self._http,
        )
        params = {name: _jsonable(arguments[name]) for name in function.argument_names}
        try:
            return await run_rpc(rest.rpc(function.name, params))
        except (APIError, httpx.HTTPError) as error:
            raise translate_error(error) from error

    async def ping(self) -> None:
        # A cheap call (an empty page) that exercises PostgREST, the database and the service
        # role's grant.
        await self.call(PROJECTS_WITH_PENDING, PROJECTS_WITH_PENDING.bind(after=None, limit=0))

    async def close(self) -> None:
        await self._http.aclose()


async def connect_supabase_store(url: str, service_role_key: str) -> FunctionStore:
    return FunctionStore(await SupabaseRpcCaller.connect(url, service_role_key))
