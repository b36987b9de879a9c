"""Duplicates, redeliveries and out-of-order items: 2xx every time, exactly one correct write."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import clips_of, new_project, row_version, tracked_project


async def test_redelivery_is_acknowledged_without_a_second_write(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    body = bodies.flat_success(J.job_1, bodies.video_url("first"))

    first = await service.post_webhook(body)
    version_after_first = await row_version(db, project)
    again = [await service.post_webhook(body) for _ in range(3)]

    assert first.json()["applied"] == [J.job_1]
    assert all(r.status_code == 200 and r.json()["duplicate"] == [J.job_1] for r in again)
    assert await row_version(db, project) == version_after_first


@pytest.mark.parametrize("seen", ["tracked", "just-written"])
async def test_concurrent_duplicates_write_once(
    service: RunningService, db: asyncpg.Connection, seen: str
) -> None:
    # "just-written": the app's write is still in the outbox, not drained by any engine yet;
    # the webhooks drain it themselves, one at a time.
    make = tracked_project if seen == "tracked" else new_project
    project = await make(db, {J.job_1: "pending"})
    body = bodies.wrapped_success(J.job_1, bodies.video_url("first"))

    responses = await asyncio.gather(*(service.post_webhook(body) for _ in range(12)))

    assert all(r.status_code == 200 for r in responses)
    outcomes = [r.json() for r in responses]
    assert sum(len(o["applied"]) for o in outcomes) == 1
    assert sum(len(o["duplicate"]) for o in outcomes) == 11
    assert await clips_of(db, project) == {J.job_1: bodies.video_url("first")}


async def test_failure_after_success_changes_nothing(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.job_1: "pending"})
    await service.post_webhook(bodies.flat_success(J.job_1, bodies.video_url("ok")))

    late = await service.post_webhook(bodies.errors_failure(J.job_1))

    assert late.status_code == 200
    assert late.json()["duplicate"] == [J.job_1]
    assert await clips_of(db, project) == {J.job_1: bodies.video_url("ok")}


async def test_several_results_for_one_task_first_success_wins(
    service: RunningService, db: asyncpg.Connection
) -> None:
    """numberResults > 1: one POST per generated video; the first to arrive is kept."""
    project = await new_project(db, {J.job_1: "pending"})

    first = await service.post_webhook(bodies.flat_success(J.job_1, bodies.video_url("one"), "v1"))
    second = await service.post_webhook(bodies.flat_success(J.job_1, bodies.video_url("two"), "v2"))

    assert (first.json()["applied"], second.json()["duplicate"]) == ([J.job_1], [J.job_1])
    assert await clips_of(db, project) == {J.job_1: bodies.video_url("one")}


async def test_out_of_order_items_across_jobs(
    service: RunningService, db: asyncpg.Connection
) -> None:
    jobs = [J.named(f"job-{i}") for i in range(6)]
    project = await new_project(db, dict.fromkeys(jobs, "pending"))

    for job in reversed(jobs):
        body = (
            bodies.flat_failure(job)
            if job == J.job_3
            else bodies.flat_success(job, bodies.video_url(job))
        )
        assert (await service.post_webhook(body)).status_code == 200

    expected = {job: bodies.video_url(job) for job in jobs} | {J.job_3: "failed"}
    assert await clips_of(db, project) == expected
