"""Postgres transport: the SQL functions called directly through an asyncpg pool.

asyncpg because it is asyncio-native and fast (binary protocol, prepared statements).

Behind a transaction-mode pooler (Supabase's on port 6543, PgBouncer with
`pool_mode=transaction`) consecutive statements of one client connection can run on different
server connections, so asyncpg's named prepared statements break ("prepared statement
__asyncpg_stmt_1__ does not exist"). The pool is made on the first connection that reaches the
database, after a probe (`uses_transaction_pooling`); behind such a pooler the statement cache
is off, which is all this transport needs: every call is one statement in its own transaction
or one explicit transaction, nothing LISTENs (the outbox is drained by polling) and the session
is never changed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from reconciler.callers import UserCaller
from reconciler.config import DEFAULTS
from reconciler.observability.logs import one_line
from reconciler.ports import StoreConflict, StoreRejected, StoreUnavailable
from reconciler.store.answers import JsonText, decode_answer
from reconciler.store.calls import REJECTED_SQLSTATE_CLASSES, RETRIED_SQLSTATES, SqlFunction
from reconciler.store.functions import FunctionStore

log = logging.getLogger(__name__)

_DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# Bounds a connection attempt (asyncpg's default is 60 s): a probe or a pool connection that
# cannot get through is reported as unavailable and tried again on the next call.
_CONNECT_TIMEOUT_SECONDS = 10.0
# Rounds of the pooling probe: one settles it behind PgBouncer (it hands the idle server
# connection to the next transaction), the others cover a pooler that picks another.
_PROBE_ROUNDS = 3
# Supabase's transaction-mode pooler listens here: taken at its word even if the probe, on a
# busy pooler that happened to keep each client on one server, saw nothing.
SUPABASE_TRANSACTION_POOLER_PORT = 6543


def names_the_transaction_pooler_port(dsn: str) -> bool:
    try:
        return urlsplit(dsn).port == SUPABASE_TRANSACTION_POOLER_PORT
    except ValueError:  # asyncpg reports a malformed URL better
        return False


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
            return StoreRejected(one_line(str(error)))
        # asyncpg appends the HINT / DETAIL on lines of their own: one line for the logs.
        if state in RETRIED_SQLSTATES:
            return StoreConflict(f"database error {state}: {one_line(str(error))}")
        return StoreUnavailable(f"database error {state}: {one_line(str(error))}")
    return StoreUnavailable(f"database unreachable: {type(error).__name__}: {one_line(str(error))}")


async def uses_transaction_pooling(dsn: str) -> bool:
    """True when `dsn` leads to a transaction-mode pooler rather than to PostgreSQL (directly or
    through a session-mode pooler, where a client connection keeps one server connection).

    Client connection A asks for its backend's pid outside a transaction; B then holds a
    transaction open and asks for its own, and A asks again. With a server connection per
    client, B's pid is never A's and A's never changes; a transaction-mode pooler gives B the
    server A just released, or A another server while B holds A's."""
    first = await asyncpg.connect(dsn, statement_cache_size=0, timeout=_CONNECT_TIMEOUT_SECONDS)
    try:
        second = await asyncpg.connect(
            dsn, statement_cache_size=0, timeout=_CONNECT_TIMEOUT_SECONDS
        )
        try:
            for _ in range(_PROBE_ROUNDS):
                mine = await first.fetchval("select pg_backend_pid()")
                async with second.transaction():
                    other = await second.fetchval("select pg_backend_pid()")
                    again = await first.fetchval("select pg_backend_pid()")
                if other == mine or again != mine:
                    return True
            return False
        finally:
            await second.close()
    finally:
        await first.close()


class PostgresCaller:
    def __init__(self, dsn: str, max_size: int) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._pool_made = asyncio.Lock()
        self._closed = False
        self._statements: dict[str, str] = {}

    @classmethod
    async def connect(cls, dsn: str, *, max_size: int = DEFAULTS.db_pool_size) -> PostgresCaller:
        """The pool is made now if the database answers, else on the first call that reaches
        it: the service starts (and reports not-ready) while the database is down, and
        reconnects by itself when it is back."""
        caller = cls(dsn, max_size)
        try:
            await caller._ready_pool()
        except StoreUnavailable as error:
            # Debug only: the first call that needs the database says so itself (a one-shot
            # command's one error line, the engine's and /readyz's reports in `serve`).
            log.debug("database not reachable at start-up; will retry on use: %s", error)
        return caller

    async def _ready_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._pool_made:
            if self._closed:
                raise StoreUnavailable("the database connection pool is closed")
            if self._pool is None:
                try:
                    pooled = names_the_transaction_pooler_port(
                        self._dsn
                    ) or await uses_transaction_pooling(self._dsn)
                except _DRIVER_ERRORS as error:
                    raise translate_error(error) from error
                if pooled:
                    log.warning(
                        "DATABASE_URL leads to a transaction-mode pooler (e.g. Supabase's on port"
                        " 6543): prepared-statement cache off; a direct or session-mode"
                        " connection (port 5432) saves a round trip per call"
                    )
                # min_size=0: connections are made on demand, and made again after a restart
                # or failover closed them (asyncpg replaces a closed connection on acquire).
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=self._max_size,
                    init=_init_connection,
                    reset=_keep_session,
                    command_timeout=30,
                    timeout=_CONNECT_TIMEOUT_SECONDS,
                    statement_cache_size=0 if pooled else 100,
                )
            return self._pool

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        statement = self._statements.get(function.name)
        if statement is None:
            statement = self._statements[function.name] = statement_for(function)
        values = [arguments[name] for name in function.argument_names]
        try:
            pool = await self._ready_pool()
            async with pool.acquire() as conn:
                answer = await conn.fetchval(statement, *values)
        except _DRIVER_ERRORS as error:
            raise translate_error(error) from error
        return await _decoded(answer)

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        statement = statement_for(function)
        values = [arguments[name] for name in function.argument_names]
        try:
            pool = await self._ready_pool()
            async with pool.acquire() as conn, conn.transaction():
                # What PostgREST does for a request carrying the user's JWT.
                await conn.execute("set local role authenticated")
                await conn.execute(
                    "select set_config('request.jwt.claims', $1, true)", json.dumps(user.claims)
                )
                answer = await conn.fetchval(statement, *values)
        except _DRIVER_ERRORS as error:
            raise translate_error(error) from error
        return await _decoded(answer)

    async def ping(self) -> None:
        try:
            pool = await self._ready_pool()
            async with pool.acquire() as conn:
                await conn.fetchval("select 1")
        except _DRIVER_ERRORS as error:
            raise translate_error(error) from error

    async def close(self) -> None:
        async with self._pool_made:
            self._closed = True
            if self._pool is not None:
                await self._pool.close()


async def connect_postgres_store(
    dsn: str, *, max_size: int = DEFAULTS.db_pool_size
) -> FunctionStore:
    return FunctionStore(await PostgresCaller.connect(dsn, max_size=max_size))
