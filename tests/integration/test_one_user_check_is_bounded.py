"""One signed-in user's check costs a bounded number of Runware requests and a bounded amount
of memory, whatever their project holds: it asks Runware about at most
RECONCILER_USER_CHECK_MAX_JOBS pending jobs (the rest answer "pending" and are left to their
scheduled poll), and it reads and answers the clips whole only while they are at most
RECONCILER_USER_CHECK_MAX_CLIPS_BYTES; a larger project gets a truncated answer."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from reconciler.callers import ServiceCaller, UserCaller
from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.local.simulator import RunwareSimulator
from reconciler.runware.client import RunwareClient
from reconciler.store.calls import SqlFunction
from reconciler.store.functions import FunctionCaller, FunctionStore
from tests.projects import clips_of, new_project
from tests.standins.postgrest import make_key

# The settings' defaults, as a deployment gets them: 50 jobs, 1 MiB of clips.
USER_CHECK_MAX_JOBS = 50
USER_CHECK_MAX_CLIPS_BYTES = 1_048_576
BATCH_SIZE = 50
DONE_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/{}.mp4"


def _user(sub: str) -> UserCaller:
    claims = {"sub": sub, "role": "authenticated"}
    return UserCaller(make_key("authenticated", sub=sub), claims)


class AnswerSizes:
    """A FunctionCaller that notes the size of every answer the database gives the service."""

    def __init__(self, inner: FunctionCaller) -> None:
        self._inner = inner
        self.sizes: list[tuple[str, int]] = []

    async def call(self, function: SqlFunction, arguments: Mapping[str, Any]) -> Any:
        answer = await self._inner.call(function, arguments)
        self.sizes.append((function.name, len(json.dumps(answer, default=str))))
        return answer

    async def call_as_user(
        self, function: SqlFunction, arguments: Mapping[str, Any], user: UserCaller
    ) -> Any:
        return await self._inner.call_as_user(function, arguments, user)

    async def ping(self) -> None:
        await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()


async def _check(
    store: FunctionStore,
    simulator: RunwareSimulator,
    caller: UserCaller | ServiceCaller,
    project: UUID,
) -> dict[str, Any]:
    async with RunwareClient(
        simulator.url, simulator.config.api_key, batch_size=BATCH_SIZE, max_retries=0
    ) as runware:
        checker = ClipChecker(store, runware, CheckPolicy(first_check_delay_seconds=0))
        return await checker.check_for(caller, project)


async def test_a_user_check_of_many_pending_jobs_sends_a_bounded_number_of_requests(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    alice = str(uuid4())
    jobs = [str(uuid4()) for _ in range(500)]
    for job in jobs:
        simulator.add_job(job, duration=3600)  # still working
    project = await new_project(db, dict.fromkeys(jobs, "pending"), owner=UUID(alice))

    body = await _check(store, simulator, _user(alice), project)

    requests = simulator.counters.requests_by_task_type["getResponse"]
    assert requests <= math.ceil(USER_CHECK_MAX_JOBS / BATCH_SIZE)
    assert simulator.counters.get_response_tasks <= USER_CHECK_MAX_JOBS
    # Every job is still reported, as pending, none as a failed check.
    assert body["pending"] == 500
    assert {d["status"] for d in body["details"]} == {"pending"}
    assert len(body["details"]) == 500
    assert "truncated" not in body
    # The jobs not asked about are tracked: their scheduled poll covers them.
    tracked = await db.fetchval(
        "select count(*) from reconciler.jobs where project_id = $1 and settled_at is null",
        project,
    )
    assert tracked == 500


async def test_repeated_user_checks_ask_about_every_job_in_turn(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    # Jobs tracked longest are asked first; the ones a check settles leave room for the next.
    alice = str(uuid4())
    jobs = [str(uuid4()) for _ in range(120)]
    for job in jobs:
        simulator.add_job(job, duration=0, outcome="success")
    project = await new_project(db, dict.fromkeys(jobs, "pending"), owner=UUID(alice))

    settled = [
        (await _check(store, simulator, _user(alice), project))["completed"] for _ in range(3)
    ]

    assert settled == [50, 100, 120]
    assert set((await clips_of(db, project)).values()) != {"pending"}


async def test_a_full_access_check_still_asks_about_every_pending_job(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    jobs = [str(uuid4()) for _ in range(120)]
    for job in jobs:
        simulator.add_job(job, duration=0, outcome="success")
    project = await new_project(db, dict.fromkeys(jobs, "pending"))

    body = await _check(store, simulator, ServiceCaller(), project)

    assert body["completed"] == 120
    assert body["pending"] == 0
    assert simulator.counters.get_response_tasks == 120


async def test_a_user_check_of_a_large_clips_row_reads_and_answers_a_bounded_part(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    alice = str(uuid4())
    done = {str(uuid4()): DONE_URL.format(n) for n in range(30_000)}
    pending = [str(uuid4()) for _ in range(5)]
    for job in pending:
        simulator.add_job(job, duration=0, outcome="success")
    project = await new_project(db, done | dict.fromkeys(pending, "pending"), owner=UUID(alice))
    row_bytes = await db.fetchval(
        "select octet_length(clips::text) from public.projects where id = $1", project
    )
    assert row_bytes > 2 * USER_CHECK_MAX_CLIPS_BYTES
    sizes = AnswerSizes(store._caller)  # the store's transport, observed

    body = await _check(FunctionStore(sizes), simulator, _user(alice), project)

    # What the service read: never the row, once or twice; only what the check needs.
    assert sizes.sizes
    assert max(size for _, size in sizes.sizes) < 64 * 1024
    # What it answered: the counts of the whole row, the checked jobs only, marked truncated.
    assert body["truncated"] is True
    assert len(json.dumps(body)) < 64 * 1024
    assert (body["total_clips"], body["completed"], body["pending"], body["failed"]) == (
        30_005,
        30_005,
        0,
        0,
    )
    truth = simulator.truth()
    assert body["clips"] == {job: truth[job] for job in pending}
    assert {d["jobId"]: d["status"] for d in body["details"]} == dict.fromkeys(pending, "completed")
    stored = await clips_of(db, project)
    assert all(stored[job] == truth[job] for job in pending)


async def test_a_user_check_of_an_ordinary_project_answers_every_clip(
    store: FunctionStore, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    alice = str(uuid4())
    old, new = str(uuid4()), str(uuid4())
    simulator.add_job(new, duration=0, outcome="success")
    project = await new_project(
        db, {old: DONE_URL.format("old"), new: "pending"}, owner=UUID(alice)
    )

    body = await _check(store, simulator, _user(alice), project)

    assert "truncated" not in body
    assert body["clips"] == {old: DONE_URL.format("old"), new: simulator.truth()[new]}
    assert body["total_clips"] == 2
    assert body["completed"] == 2
