"""Runware task ids are UUIDs. A clip key that is not one (any 1-255 characters were accepted
before) was sent to Runware in the same batch as other projects' jobs, where one malformed id
could make Runware refuse the whole batch. Now such a key is recorded as not tracked, with its
reason, counted, and never sent; the service and the SQL core apply the same rule."""

from __future__ import annotations

from uuid import uuid4

import asyncpg
import pytest

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.clips import NOT_A_TASK_ID, is_trackable
from reconciler.engine import Engine, EnginePolicy
from reconciler.local.simulator import RunwareSimulator
from reconciler.runware.client import RunwareClient
from reconciler.store.functions import FunctionStore
from tests.projects import clips_of, new_project

KEYS = [
    str(uuid4()),
    str(uuid4()).upper(),
    "job-1",
    "",
    "k" * 300,
    str(uuid4()).replace("-", ""),
    "{" + str(uuid4()) + "}",
    "urn:uuid:" + str(uuid4()),
    str(uuid4()) + "\n",
    " " + str(uuid4()),
    str(uuid4())[:-1] + "g",
    str(uuid4())[:-1] + "\u0663",  # an Arabic-Indic digit: a digit, not a hexadecimal one
]


@pytest.mark.parametrize("key", KEYS, ids=range(len(KEYS)))
async def test_the_service_and_the_database_agree_on_what_a_task_id_is(
    db: asyncpg.Connection, key: str
) -> None:
    assert is_trackable(key) == await db.fetchval("select reconciler.is_trackable($1)", key)
    assert is_trackable(key) == (key in KEYS[:2])


async def test_a_key_that_is_not_a_uuid_is_recorded_and_never_polled(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    good = str(uuid4())
    simulator.add_job(good, duration=0, outcome="success")
    simulator.add_job("job-1", duration=0, outcome="success")  # it would settle if asked
    project = await new_project(db, {good: "pending", "job-1": "pending"})
    runware = RunwareClient(simulator.url, simulator.config.api_key, max_retries=0)
    engine = Engine(
        store,
        ClipChecker(store, runware, CheckPolicy(first_check_delay_seconds=0)),
        policy=EnginePolicy(),
    )
    try:
        await engine.drain_once()
        assert await engine.poll_once() == 1
    finally:
        await runware.aclose()

    assert "job-1" not in simulator.counters.polls_by_task
    clips = await clips_of(db, project)
    assert clips["job-1"] == "pending"
    assert clips[good] != "pending"
    assert (
        await db.fetchval(
            "select last_error from reconciler.untrackable_clips where project_id = $1", project
        )
        == NOT_A_TASK_ID
    )
    assert NOT_A_TASK_ID == "job id is not a Runware task id (a UUID); it is not tracked"
    assert (await store.pending_stats()).untrackable == 1
