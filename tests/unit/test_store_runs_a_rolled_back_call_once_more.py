"""Item 19: a call the database rolled back whole to break a deadlock (40P01) or a
serialization conflict (40001) is run once more by the store, in the one place every call
passes (FunctionStore), before anyone answers 503; a second conflict in a row, and every other
failure, is raised at once. Both transports name those SQLSTATEs the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from postgrest import APIError

from reconciler.callers import UserCaller
from reconciler.ports import StoreConflict, StoreRejected, StoreUnavailable
from reconciler.store import postgres, supabase
from reconciler.store.calls import SqlFunction
from reconciler.store.functions import FunctionStore

INGESTED = {"outcome": "applied", "project_ids": []}
USER = UserCaller(token="t", claims={"sub": "00000000-0000-4000-8000-000000000001"})
PROJECT = UUID("00000000-0000-4000-8000-000000000002")


class ScriptedCaller:
    """A transport that fails with the scripted errors, in order, then answers."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0

    async def _next(self) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return INGESTED

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        return await self._next()

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        return await self._next()

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def _ingest(caller: ScriptedCaller) -> Any:
    return await FunctionStore(caller).ingest_result(
        "6f1c5a52-7f5e-4a0b-9a43-2d7e0c1b9f10", "failed", None, 0.0
    )


async def test_one_conflict_is_run_again_and_answered() -> None:
    caller = ScriptedCaller(StoreConflict("database error 40P01: deadlock detected"))
    outcome = await _ingest(caller)
    assert (outcome.kind.value, caller.calls) == ("applied", 2)


async def test_a_second_conflict_in_a_row_is_raised_as_unavailable() -> None:
    caller = ScriptedCaller(StoreConflict("40P01"), StoreConflict("40001"))
    with pytest.raises(StoreUnavailable):
        await _ingest(caller)
    assert caller.calls == 2


@pytest.mark.parametrize(
    "failure", [StoreUnavailable("database unreachable"), StoreRejected("bad input")]
)
async def test_other_failures_are_not_run_again(failure: Exception) -> None:
    caller = ScriptedCaller(failure)
    with pytest.raises(type(failure)):
        await _ingest(caller)
    assert caller.calls == 1


async def test_calls_as_the_user_are_run_again_too() -> None:
    caller = ScriptedCaller(StoreConflict("40P01"))
    answer = await FunctionStore(caller).project_visible_to(PROJECT, USER)
    assert caller.calls == 2
    assert answer is True


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), StoreConflict),
        (asyncpg.exceptions.SerializationError("could not serialize"), StoreConflict),
        (asyncpg.exceptions.LockNotAvailableError("lock not available"), StoreUnavailable),
        (asyncpg.exceptions.InvalidParameterValueError("bad"), StoreRejected),
    ],
)
def test_postgres_transport_names_conflicts(error: Exception, expected: type) -> None:
    translated = postgres.translate_error(error)
    assert type(translated) is expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("40P01", StoreConflict),
        ("40001", StoreConflict),
        ("55P03", StoreUnavailable),
        ("22023", StoreRejected),
    ],
)
def test_supabase_transport_names_conflicts(code: str, expected: type) -> None:
    translated = supabase.translate_error(APIError({"code": code, "message": "m"}))
    assert type(translated) is expected
