"""A running service copies a video once, however many projects hold its job, and never again
when a clip is set back to "pending" (issue 18, items 4 and 5). Downloads are counted at the
simulator's video server, uploads at the Storage stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.archiving import BUCKET, archive_env, serve_videos
from tests.plugin import AppFactory
from tests.projects import clips_of, new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

PROJECTS = 4
REPENDS = 3


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


def _uploads(storage: StorageStandIn) -> int:
    return storage.counters.standard_uploads + storage.counters.tus_creates


async def test_one_job_in_four_projects_is_downloaded_and_stored_once(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    service_env: dict[str, str],
    run_app: AppFactory,
) -> None:
    serve_videos(simulator)
    job = str(uuid4())
    simulator.add_job(job, duration=0, outcome="success")
    projects = [await new_project(db, {job: "pending"}) for _ in range(PROJECTS)]
    env = archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY)
    prefix = storage.public_url(BUCKET, "")

    async def archived_url(project: UUID) -> str | None:
        value = (await clips_of(db, project))[job]
        return value if isinstance(value, str) and value.startswith(prefix) else None

    async with run_app(env) as app:

        async def all_archived() -> bool:
            return all([await archived_url(p) for p in projects])

        await wait_until(all_archived, timeout=60)
        urls = {await archived_url(p) for p in projects}
        assert len(urls) == 1
        [stored] = urls
        assert (simulator.counters.video_requests, _uploads(storage)) == (1, 1)

        # The app sets one clip back to "pending" three times (to run the job again); each
        # time the same URL comes back and the clip holds the stored object again.
        for _ in range(REPENDS):
            await db.execute(
                "update public.projects set clips = jsonb_build_object($2::text, 'pending')"
                " where id = $1",
                projects[0],
                job,
            )

            async def back_to_the_object() -> bool:
                return await archived_url(projects[0]) == stored

            await wait_until(back_to_the_object, timeout=60)
        outcomes = dict(app.services.archive.counts.outcomes) if app.services.archive else {}

    assert (simulator.counters.video_requests, _uploads(storage)) == (1, 1)
    # One object, named after whichever project's result came first; every clip holds it.
    paths = [f"{project}/{job}.mp4" for project in projects]
    [path] = [path for path in paths if storage.object_file(BUCKET, path)]
    assert stored == storage.public_url(BUCKET, path)
    assert outcomes["archived"] == 1
    copies = await db.fetch("select state, attempts from reconciler.archive_tasks")
    assert [(r["state"], r["attempts"]) for r in copies] == [("archived", 1)]
