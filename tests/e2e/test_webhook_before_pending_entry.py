"""I3: a webhook can beat the app's own write of "pending". Its result is parked durably and
applied as soon as a path reads the project — tested in both orders and racing."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import RunningService
from tests.projects import add_pending_clip, clips_of, new_project


async def _check(service: RunningService, project: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        return await client.post(
            "/check-clips-status", json={"project_id": str(project)}, headers=service.headers()
        )


async def test_webhook_first_then_pending_entry(
    service: RunningService, db: asyncpg.Connection
) -> None:
    url = bodies.video_url(J.early)
    response = await service.post_webhook(bodies.flat_success(J.early, url))
    parked = await db.fetchval(
        "select result from reconciler.parked_results where job_id = $1", J.early
    )
    project = await new_project(db, {J.existing: "pending"})
    await add_pending_clip(db, project, J.early)

    checked = await _check(service, project)

    assert response.status_code == 200
    assert checked.status_code == 200
    assert response.json()["parked"] == [J.early]
    assert parked == url
    assert checked.json()["clips"][J.early] == url
    assert await clips_of(db, project) == {J.existing: "pending", J.early: url}
    # Kept until retention, for any other project that holds or gets the same job id.
    assert await db.fetchval("select count(*) from reconciler.parked_results") == 1


async def test_pending_entry_first_then_webhook(
    service: RunningService, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {J.existing: "pending"})
    await add_pending_clip(db, project, J.late)

    response = await service.post_webhook(bodies.flat_failure(J.late))

    assert response.status_code == 200
    assert response.json()["applied"] == [J.late]
    assert await clips_of(db, project) == {J.existing: "pending", J.late: "failed"}


async def test_racing_webhook_and_pending_write_always_end_applied(
    service: RunningService, db: asyncpg.Connection, database_url: str
) -> None:
    app = await asyncpg.connect(database_url)
    try:
        for round_number in range(20):
            job = J.named(f"race-{round_number}")
            url = bodies.video_url(job)
            project = await new_project(db, {})
            webhook, _ = await asyncio.gather(
                service.post_webhook(bodies.flat_success(job, url)),
                add_pending_clip(app, project, job),
            )
            assert webhook.status_code == 200
            assert webhook.json()["applied"] + webhook.json()["parked"] == [job]
            # Whichever order the race took, the next reader of the project applies it.
            checked = await _check(service, project)
            assert checked.status_code == 200, f"round {round_number}: {checked.text}"
            assert checked.json()["clips"] == {job: url}, f"round {round_number}"
            assert await clips_of(db, project) == {job: url}, f"round {round_number}"
    finally:
        await app.close()
