"""Archiving under faults: a cut download and Storage 5xx are retried until the video is in
Storage; a video Runware deleted (404), one Storage refuses as too large (413) or as invalid (a
400 that is not a duplicate) is given up with its reason after one download and the clip keeps
its Runware URL; an origin that trickles is cut and counted as a failed attempt; a clip the app
changes during the copy is never overwritten ('superseded'); a missing bucket pauses archiving
(one log line) and gives nothing up; what Storage stores is typed by the file's signature."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.archiving import (
    BUCKET,
    archive_env,
    archive_tasks,
    assert_archived_byte_for_byte,
    serve_videos,
)
from tests.job_ids import J
from tests.plugin import AppFactory
from tests.projects import clips_of, new_project
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.waiting import wait_until

SIZE = 256 * 1024


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(SERVICE_ROLE_KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


@pytest.fixture
def env(
    service_env: dict[str, str], simulator: RunwareSimulator, storage: StorageStandIn
) -> dict[str, str]:
    serve_videos(simulator, SIZE)
    return archive_env(service_env, simulator, storage.url, SERVICE_ROLE_KEY)


async def _finished_project(
    db: asyncpg.Connection, simulator: RunwareSimulator, jobs: list[str]
) -> UUID:
    for job in jobs:
        simulator.add_job(job, duration=0, outcome="success")
    return await new_project(db, dict.fromkeys(jobs, "pending"))


async def _states(db: asyncpg.Connection) -> dict[str, str]:
    return {job: task["state"] for (_, job), task in (await archive_tasks(db)).items()}


async def _wait_for_states(db: asyncpg.Connection, expected: dict[str, str]) -> None:
    async def reached() -> bool:
        return await _states(db) == expected

    await wait_until(reached, timeout=60)


async def test_a_cut_download_is_retried_until_the_video_is_whole(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    simulator.config.videos.cut_after_bytes = SIZE // 2
    await _finished_project(db, simulator, [J.cut])
    # Retries half a second to a second apart: long enough to see each failure recorded.
    env |= {
        "RECONCILER_ARCHIVE_RETRY_BASE_SECONDS": "1",
        "RECONCILER_ARCHIVE_RETRY_CAP_SECONDS": "1",
    }

    async with run_app(env):

        async def failed_twice() -> bool:
            tasks = list((await archive_tasks(db)).values())
            return bool(tasks) and tasks[0]["lease_owner"] is None and tasks[0]["attempts"] >= 2

        # Two attempts cut and recorded, still queued for another.
        await wait_until(failed_twice, timeout=60)
        [task] = (await archive_tasks(db)).values()
        assert task["state"] == "queued"
        assert "download" in task["last_error"]
        simulator.config.videos.cut_after_bytes = None
        await _wait_for_states(db, {J.cut: "archived"})

    assert await assert_archived_byte_for_byte(db, storage, storage.url) == 1
    assert simulator.counters.video_faults_injected >= 2


async def test_storage_5xx_is_retried(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    storage.faults.fail_next = 3
    storage.faults.fail_status = 503
    await _finished_project(db, simulator, [J.a, J.b])

    async with run_app(env):
        await _wait_for_states(db, {J.a: "archived", J.b: "archived"})

    assert storage.counters.faults_injected == 3
    assert await assert_archived_byte_for_byte(db, storage, storage.url) == 2


async def test_deleted_and_too_large_videos_are_given_up_and_keep_their_url(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    # "gone": Runware already deleted the file; "big": Storage's size limit refuses it.
    simulator.config.videos.retention_seconds = 0
    gone = await _finished_project(db, simulator, [J.gone])
    async with run_app(env):
        await _wait_for_states(db, {J.gone: "given_up"})
    simulator.config.videos.retention_seconds = None
    storage.faults.max_object_bytes = SIZE // 2
    big = await _finished_project(db, simulator, [J.big])
    async with run_app(env):
        await _wait_for_states(db, {J.gone: "given_up", J.big: "given_up"})

    tasks = {job: task for (_, job), task in (await archive_tasks(db)).items()}
    assert "404" in tasks[J.gone]["last_error"]
    assert "size" in tasks[J.big]["last_error"]
    # Given up on the first attempt: permanent, no retries spent.
    assert tasks[J.gone]["attempts"] == tasks[J.big]["attempts"] == 1
    truth = simulator.truth()
    assert await clips_of(db, gone) == {J.gone: truth[J.gone]}
    assert await clips_of(db, big) == {J.big: truth[J.big]}
    assert storage.object_file(BUCKET, f"{big}/{J.big}.mp4") is None


async def test_a_clip_the_app_changes_during_the_copy_is_left_alone(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    # Two 256 KiB pieces at 64 KiB/s: once bytes flow, the copy has 8 s to go.
    simulator.config.videos.size_bytes = 2 * SIZE
    simulator.config.videos.bytes_per_second = 64 * 1024
    project = await _finished_project(db, simulator, [J.mine, J.other])

    async with run_app(env):
        await wait_until(lambda: simulator.counters.video_bytes_sent > 0, timeout=60)
        await db.execute(
            "update public.projects set clips = clips || jsonb_build_object($2::text, 'replaced')"
            " where id = $1",
            project,
            J.mine,
        )
        await _wait_for_states(db, {J.mine: "superseded", J.other: "archived"})

    clips = await clips_of(db, project)
    tasks = {job: task for (_, job), task in (await archive_tasks(db)).items()}
    assert clips[J.mine] == "replaced"
    assert clips[J.other] == tasks[J.other]["archived_url"]
    assert tasks[J.mine]["source_url"] == simulator.truth()[J.mine]


async def test_a_missing_bucket_pauses_archiving_and_gives_nothing_up(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = env | {"RECONCILER_ARCHIVE_BUCKET": "not-yet"}
    project = await _finished_project(db, simulator, [J.waits])

    with caplog.at_level(logging.ERROR, logger="reconciler.archive.worker"):
        async with run_app(env) as app:
            worker = app.services.archive
            assert worker is not None
            await wait_until(lambda: worker.trouble is not None, timeout=60)
            await _wait_for_states(db, {J.waits: "queued"})
            storage.add_bucket("not-yet")
            await _wait_for_states(db, {J.waits: "archived"})

    paused = [r.getMessage() for r in caplog.records if "archiving paused" in r.getMessage()]
    assert len(paused) == 1
    assert "not-yet" in paused[0]
    assert "\n" not in paused[0]
    assert (await clips_of(db, project))[J.waits].startswith(storage.url)


async def test_a_storage_400_is_given_up_after_one_download(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    """A 400 that is not a duplicate (an object key Storage will not take) answers the same
    every time: the video is not downloaded again to find out."""
    storage.faults.fail_next = 100
    storage.faults.fail_status = 400
    job = str(uuid4())
    project = await _finished_project(db, simulator, [job])

    async with run_app(env):
        await _wait_for_states(db, {job: "given_up"})

    [task] = (await archive_tasks(db)).values()
    assert task["attempts"] == 1
    assert "Storage refused the object" in task["last_error"]
    assert "HTTP 400" in task["last_error"]
    assert simulator.counters.video_requests == 1
    assert storage.counters.faults_injected == 1
    assert await clips_of(db, project) == {job: simulator.truth()[job]}


async def test_a_trickling_origin_is_cut_and_counted_as_a_failed_attempt(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    """The simulator sends the video's first 256 KiB piece, then waits 3 s before the next. A
    0.2 s window and a minimum no video could meet in it cut every attempt however loaded this
    machine is; each cut is recorded (attempts, reason) and the last one gives the video up,
    its clip keeping its Runware URL. (A real trickle, a byte every 2 s, never lets a read
    timeout fire; the wait here is short only so the simulator stops quickly.)"""
    simulator.config.videos.size_bytes = 2 * SIZE
    simulator.config.videos.bytes_per_second = SIZE / 3
    job = str(uuid4())
    project = await _finished_project(db, simulator, [job])
    env |= {
        "RECONCILER_ARCHIVE_MIN_BYTES_PER_SECOND": str(1024**3),
        "RECONCILER_ARCHIVE_SLOW_WINDOW_SECONDS": "0.2",
        "RECONCILER_ARCHIVE_MAX_ATTEMPTS": "2",
    }

    async with run_app(env):
        await _wait_for_states(db, {job: "given_up"})

    [task] = (await archive_tasks(db)).values()
    assert task["attempts"] == 2
    assert "under the minimum of 1073741824 bytes per second" in task["last_error"]
    assert simulator.counters.video_requests == 2
    assert await clips_of(db, project) == {job: simulator.truth()[job]}


async def test_storage_is_told_the_type_the_signature_shows(
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    storage: StorageStandIn,
    run_app: AppFactory,
    env: dict[str, str],
) -> None:
    simulator.config.videos.content_type = "video/mp4, text/html"
    job = str(uuid4())
    project = await _finished_project(db, simulator, [job])

    async with run_app(env):
        await _wait_for_states(db, {job: "archived"})

    assert storage.content_type(BUCKET, f"{project}/{job}.mp4") == "video/mp4"
    assert await assert_archived_byte_for_byte(db, storage, storage.url) == 1
