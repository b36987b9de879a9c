"""The outcome `reconciler_ingest_result` answers is checked against `WebhookOutcome` where it
enters Python: an outcome this version does not know (SQL and code out of step) is a clear
StoreUnavailable naming it — the webhook answers 503 and is retried — never an AttributeError
deep in the report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from reconciler.callers import UserCaller
from reconciler.ports import (
    STORED_OUTCOMES,
    StoreUnavailable,
    UnexpectedStoreAnswer,
    WebhookOutcome,
)
from reconciler.store.calls import INGEST_RESULT, SqlFunction
from reconciler.store.functions import FunctionStore


class AnsweringCaller:
    """A transport that answers every call with the same value, recording what it was asked."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[SqlFunction, dict[str, Any]]] = []

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        self.calls.append((function, dict(arguments)))
        return self.answer

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        raise AssertionError("not used here")

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        pass


async def _ingest(answer: Any) -> Any:
    store = FunctionStore(AnsweringCaller(answer))
    return await store.ingest_result("job-1", "failed", "boom", 0.0)


@pytest.mark.parametrize("outcome", ["teleported", "ignored", "APPLIED", None, 3])
async def test_an_unknown_outcome_from_the_database_is_rejected_clearly(outcome: object) -> None:
    with pytest.raises(UnexpectedStoreAnswer) as raised:
        await _ingest({"outcome": outcome, "project_ids": []})
    assert isinstance(raised.value, StoreUnavailable)  # retried, never a 500
    message = str(raised.value)
    assert INGEST_RESULT.name in message
    assert repr(outcome) in message
    assert "applied, parked, duplicate" in message


@pytest.mark.parametrize("outcome", STORED_OUTCOMES)
async def test_known_outcomes_become_the_enum(outcome: WebhookOutcome) -> None:
    project = "00000000-0000-0000-0000-000000000001"
    ingested = await _ingest({"outcome": outcome.value, "project_ids": [project]})
    assert ingested.kind is outcome
    assert [str(p) for p in ingested.project_ids] == [project]


async def test_the_call_carries_exactly_the_catalogued_arguments() -> None:
    caller = AnsweringCaller({"outcome": "parked", "project_ids": []})
    await FunctionStore(caller).ingest_result("job-1", "failed", "boom", 2.5)
    [(function, arguments)] = caller.calls
    assert function is INGEST_RESULT
    assert arguments == dict(
        zip(INGEST_RESULT.argument_names, ["job-1", "failed", "boom", 2.5], strict=True)
    )


def test_binding_refuses_a_missing_or_unknown_argument() -> None:
    with pytest.raises(TypeError, match="first_check_delay_seconds"):
        INGEST_RESULT.bind(job_id="j", result="failed", reason=None)
    with pytest.raises(TypeError, match="colour"):
        INGEST_RESULT.bind(
            job_id="j", result="failed", reason=None, first_check_delay_seconds=0, colour="red"
        )
