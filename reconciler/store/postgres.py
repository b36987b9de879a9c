"""Postgres transport: the SQL functions called directly through an asyncpg pool.

asyncpg because it is asyncio-native and fast (binary protocol, prepared statements).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from reconciler.callers import UserCaller
from reconciler.config import DEFAULTS
from reconciler.ports import StoreConflict, StoreRejected, StoreUnavailable
from reconciler.store.answers import JsonText, decode_answer
from reconciler.store.calls import REJECTED_SQLSTATE_CLASSES, RETRIED_SQLSTATES, SqlFunction
from reconciler.store.functions import FunctionStore


def statement_for(function: SqlFunction) -> str:
    arguments = ", ".join(
        f"{name} => ${index}::{pg_type}"
        for index, (name, pg_type) in enumerate(
            zip(function.argument_names, function.argument_types, strict=True), start=1
        )
    )
    return f"select public.{function.name}({arguments})"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb answers come back undecoded (JsonText) and are decoded by `_decoded` once the
    # connection is back in the pool: a large one in a worker thread, not inside the driver on
    # the event loop.
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=JsonText, schema="pg_catalog")


async def _decoded(value: Any) -> Any:
    """A function's answer as Python values (jsonb decoded; other types as asyncpg gave them)."""
    return await decode_answer(value) if isinstance(value, JsonText) else value


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (`RESET ALL; UNLISTEN *; …`, one more round trip per
    call): these connections never change session state — role switches are SET LOCAL, and
    nothing LISTENs. asyncpg still rolls back an open transaction."""


def translate_error(error: Exception) -> Exception:
    """Map a driver error to the port's errors (callers only know those)."""
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        if state.startswith(REJECTED_SQLSTATE_CLASSES):
            return StoreRejected(str(error))
        if state in RETRIED_SQLSTATES:
            return StoreConflict(f"database error {state}: {error}")
        return StoreUnavailable(f"database error {state}: {error}")
    return StoreUnavailable(f"database unreachable: {type(error).__name__}: {error}")


class PostgresCaller:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._statements: dict[str, str] = {}

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = DEFAULTS.db_pool_size) -> PostgresCaller:
        # min_size=0: no connection at start-up, so the service starts (and reports not-ready)
        # while the database is down, and reconnects by itself when it is back.
        pool = await asyncpg.create_pool(
            dsn,
            min_size=0,
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            command_timeout=30,
        )
        return cls(pool)

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        statement = self._statements.get(function.name)
        if statement is None:
            statement = self._statements[function.name] = statement_for(function)
        values = [arguments[name] for name in function.argument_names]
        try:
            async with self._pool.acquire() as conn:
                answer = await conn.fetchval(statement, *values)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise translate_error(error) from error
        return await _decoded(answer)

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        statement = statement_for(function)
        values = [arguments[name] for name in function.argument_names]
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # What PostgREST does for a request carrying the user's JWT.
                await conn.execute("set local role authenticated")
                await conn.execute(
                    "select set_config('request.jwt.claims', $1, true)", json.dumps(user.claims)
                )
                answer = await conn.fetchval(statement, *values)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise translate_error(error) from error
        return await _decoded(answer)

    async def ping(self) -> None:
        try:
            async with self._pool.acquire() as conn:
                await conn.fetchval("select 1")
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
            raise translate_error(error) from error

    async def close(self) -> None:
        await self._pool.close()


async def connect_postgres_store(
    dsn: str, *, max_size: int = DEFAULTS.db_pool_size
) -> FunctionStore:
    return FunctionStore(await PostgresCaller.connect(dsn, max_size=max_size))
