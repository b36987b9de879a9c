"""A job id held by several projects (an app that duplicates a project) settles in each of them:
by webhook and by polling. Duplicates still write once per project, and Runware is asked about
the job once per round."""

from __future__ import annotations

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import ENGINE_ENV, AppFactory, RunningService
from tests.projects import clips_of, tracked_project
from tests.waiting import wait_until


async def test_a_webhook_settles_the_job_in_every_project(
    service: RunningService, db: asyncpg.Connection
) -> None:
    original = await tracked_project(db, {J.shared: "pending", J.own: "pending"})
    duplicate = await tracked_project(db, {J.shared: "pending"})
    url = bodies.video_url(J.shared)

    first = await service.post_webhook(bodies.flat_success(J.shared, url))
    again = await service.post_webhook(bodies.flat_success(J.shared, url))

    assert first.status_code == again.status_code == 200
    assert first.json()["applied"] == [J.shared]
    assert again.json()["duplicate"] == [J.shared]
    assert await clips_of(db, original) == {J.shared: url, J.own: "pending"}
    assert await clips_of(db, duplicate) == {J.shared: url}


async def test_a_project_duplicated_after_the_result_gets_it_at_once(
    service: RunningService, db: asyncpg.Connection
) -> None:
    await tracked_project(db, {J.shared: "pending"})
    url = bodies.video_url(J.shared)
    assert (await service.post_webhook(bodies.flat_success(J.shared, url))).status_code == 200

    # The app copies a project whose clip it had not refreshed yet.
    late_copy = await tracked_project(db, {J.shared: "pending"})

    assert await clips_of(db, late_copy) == {J.shared: url}


async def test_polling_settles_the_job_in_every_project(
    service_env: dict[str, str],
    run_app: AppFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
) -> None:
    simulator.add_job(J.shared, duration=0, outcome="success")  # no webhook: polling only
    projects = [await tracked_project(db, {J.shared: "pending"}) for _ in range(3)]
    async with run_app(service_env | ENGINE_ENV) as running:

        async def settled() -> bool:
            values = [(await clips_of(db, p))[J.shared] for p in projects]
            return "pending" not in values

        await wait_until(settled)
        stats = running.engine.stats

    truth = simulator.truth()[J.shared]
    assert [await clips_of(db, p) for p in projects] == [{J.shared: truth}] * 3
    assert stats.results_written == 3
    # Every request to Runware asked about the job once, however many projects hold it. (How
    # many requests it took depends on when the simulator finished the video.)
    counters = simulator.counters
    assert counters.polls_by_task[J.shared] >= 1
    assert counters.get_response_tasks == counters.requests_by_task_type["getResponse"]
