"""Archive transfers against the real simulator and Storage stand-in when things go wrong:
dropped connections (a TUS upload resumes instead of restarting), 5xx, 413, a 400, a rejected
key, a missing bucket, an upload URL on another origin, videos that are gone, cut, too large or
trickling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from reconciler.archive.transfer import (
    AttemptLimits,
    Downloaded,
    Progress,
    SourceGone,
    StorageRefused,
    StorageUploader,
    TooLarge,
    TransferFailed,
    download,
    within_limits,
)
from reconciler.backoff import Backoff
from reconciler.clips import UrlPolicy
from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, VideoFiles
from reconciler.local.storage import StorageStandIn

KEY = "service-role-key"
BUCKET = "videos"
MIB = 1024 * 1024
FAST = Backoff(base=0.001, cap=0.01)


@pytest.fixture
async def sim() -> AsyncIterator[RunwareSimulator]:
    config = SimulatorConfig(seed=9, videos=VideoFiles(on_own_origin=True, size_bytes=MIB))
    async with RunwareSimulator(config) as simulator:
        yield simulator


@pytest.fixture
async def storage() -> AsyncIterator[StorageStandIn]:
    async with StorageStandIn(KEY, buckets=[BUCKET]) as stand_in:
        yield stand_in


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def _video_url(sim: RunwareSimulator, task: str = "task") -> str:
    return sim.add_job(task, duration=0).video_urls()[0]


async def _fetch(
    sim: RunwareSimulator, http: httpx.AsyncClient, into: Path, *, max_bytes: int = 100 * MIB
) -> Downloaded:
    policy = UrlPolicy.from_entries([sim.base_url])
    return await download(http, _video_url(sim), policy=policy, max_bytes=max_bytes, into=into)


def _files_in(directory: Path) -> list[Path]:
    return list(directory.iterdir())


# --- Uploads ----------------------------------------------------------------------------------


async def test_a_tus_upload_resumes_after_a_dropped_patch(
    sim: RunwareSimulator, storage: StorageStandIn, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sim.config.videos.size_bytes = 14 * MIB
    got = await _fetch(sim, http, tmp_path)
    dropped_at = 3 * MIB
    storage.faults.drop_upload_after_bytes = dropped_at
    uploader = StorageUploader(http, storage.url, KEY, backoff=FAST)

    await uploader.upload(BUCKET, "p/j.mp4", got)

    assert storage.counters.faults_injected == 1
    assert storage.counters.tus_creates == 1
    assert storage.counters.tus_heads >= 1
    assert storage.object_sha256(BUCKET, "p/j.mp4") == got.sha256
    # A restart would have sent the dropped 3 MiB again on top of the whole file.
    full_restart = got.size + dropped_at
    assert storage.counters.upload_bytes_received < full_restart


async def test_a_standard_upload_is_sent_again_after_a_drop(
    sim: RunwareSimulator, storage: StorageStandIn, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    got = await _fetch(sim, http, tmp_path)
    storage.faults.drop_upload_after_bytes = got.size // 2
    uploader = StorageUploader(http, storage.url, KEY, backoff=FAST)

    await uploader.upload(BUCKET, "p/j.mp4", got)

    assert storage.counters.standard_uploads == 2
    assert storage.object_sha256(BUCKET, "p/j.mp4") == got.sha256


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_a_few_5xx_are_retried_within_the_attempt(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path)
    storage.faults.fail_next = 2
    uploader = StorageUploader(
        http, storage.url, KEY, resumable_threshold=threshold, retries=3, backoff=FAST
    )

    await uploader.upload(BUCKET, "p/j.mp4", got)

    assert storage.counters.faults_injected == 2
    assert storage.object_sha256(BUCKET, "p/j.mp4") == got.sha256


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_5xx_beyond_the_retries_is_a_transient_failure(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path)
    storage.faults.fail_next = 100
    storage.faults.fail_status = 502
    uploader = StorageUploader(
        http, storage.url, KEY, resumable_threshold=threshold, retries=2, backoff=FAST
    )

    with pytest.raises(TransferFailed, match="HTTP 502") as caught:
        await uploader.upload(BUCKET, "p/j.mp4", got)
    assert not caught.value.permanent
    assert storage.object_file(BUCKET, "p/j.mp4") is None


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_an_object_over_storages_limit_is_too_large(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path)
    storage.faults.max_object_bytes = got.size - 1
    uploader = StorageUploader(http, storage.url, KEY, resumable_threshold=threshold)

    with pytest.raises(TooLarge, match="size") as caught:
        await uploader.upload(BUCKET, "p/j.mp4", got)
    assert caught.value.permanent
    assert storage.object_file(BUCKET, "p/j.mp4") is None


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_a_rejected_key_is_our_failure_not_the_videos(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path)
    uploader = StorageUploader(http, storage.url, "not-the-key", resumable_threshold=threshold)

    with pytest.raises(TransferFailed, match="rejected the service role key") as caught:
        await uploader.upload(BUCKET, "p/j.mp4", got)
    assert not caught.value.permanent
    assert storage.counters.rejected_auth == 1


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_a_400_is_permanent_and_sent_once(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path)
    storage.faults.fail_next = 100
    storage.faults.fail_status = 400
    uploader = StorageUploader(
        http, storage.url, KEY, resumable_threshold=threshold, retries=3, backoff=FAST
    )

    with pytest.raises(StorageRefused, match="HTTP 400") as caught:
        await uploader.upload(BUCKET, "p/j.mp4", got)
    assert caught.value.permanent
    assert storage.counters.faults_injected == 1


async def test_an_upload_url_on_another_origin_gets_no_request(
    sim: RunwareSimulator, storage: StorageStandIn, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    got = await _fetch(sim, http, tmp_path)
    async with StorageStandIn(KEY, buckets=[BUCKET]) as elsewhere:
        storage.faults.tus_location_origin = elsewhere.url
        uploader = StorageUploader(http, storage.url, KEY, resumable_threshold=1, backoff=FAST)

        with pytest.raises(TransferFailed, match="another origin") as caught:
            await uploader.upload(BUCKET, "p/j.mp4", got)

        assert elsewhere.counters.requests == 0
    assert storage.counters.tus_creates == 1
    assert storage.counters.tus_patches == storage.counters.tus_heads == 0
    assert "SUPABASE_URL" in caught.value.reason


async def test_check_bucket_names_the_missing_bucket(
    storage: StorageStandIn, http: httpx.AsyncClient
) -> None:
    uploader = StorageUploader(http, storage.url, KEY)
    await uploader.check_bucket(BUCKET)

    with pytest.raises(TransferFailed) as caught:
        await uploader.check_bucket("archive")
    assert caught.value.reason == "Storage bucket 'archive' does not exist"


# --- The stand-in answers as Storage does -------------------------------------------------------


async def test_the_stand_in_refuses_missing_and_wrong_keys(
    storage: StorageStandIn, http: httpx.AsyncClient
) -> None:
    url = f"{storage.url}/storage/v1/object/{BUCKET}/p/j.mp4"
    no_apikey = await http.post(url, content=b"x", headers={"authorization": f"Bearer {KEY}"})
    wrong_apikey = await http.post(url, content=b"x", headers={"apikey": "nope"})
    no_bearer = await http.post(url, content=b"x", headers={"apikey": KEY})
    wrong_bearer = await http.post(
        url, content=b"x", headers={"apikey": KEY, "authorization": "Bearer nope"}
    )

    assert (no_apikey.status_code, no_apikey.json()) == (
        401,
        {"message": "No API key found in request"},
    )
    assert wrong_apikey.status_code == 401
    assert no_bearer.status_code == 400
    assert no_bearer.json()["statusCode"] == "403"
    assert wrong_bearer.status_code == 400
    assert wrong_bearer.json() == {
        "statusCode": "403",
        "error": "Unauthorized",
        "message": "invalid signature",
    }
    assert storage.object_file(BUCKET, "p/j.mp4") is None


async def test_the_stand_in_refuses_a_duplicate_without_upsert(
    storage: StorageStandIn, http: httpx.AsyncClient
) -> None:
    url = f"{storage.url}/storage/v1/object/{BUCKET}/p/j.mp4"
    auth = {"apikey": KEY, "authorization": f"Bearer {KEY}"}
    first = await http.post(url, content=b"one", headers=auth)
    again = await http.post(url, content=b"two", headers=auth)
    upserted = await http.post(url, content=b"three", headers=auth | {"x-upsert": "true"})

    assert first.status_code == 200
    assert first.json()["Key"] == f"{BUCKET}/p/j.mp4"
    assert again.status_code == 400
    assert again.json() == {
        "statusCode": "409",
        "error": "Duplicate",
        "message": "The resource already exists",
    }
    assert upserted.status_code == 200
    public = await http.get(storage.public_url(BUCKET, "p/j.mp4"))
    assert public.content == b"three"


# --- Downloads --------------------------------------------------------------------------------


async def test_a_video_past_its_retention_is_gone(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sim.config.videos.retention_seconds = 0.0
    url = _video_url(sim)
    policy = UrlPolicy.from_entries([sim.base_url])

    with pytest.raises(SourceGone, match="404") as caught:
        await download(http, url, policy=policy, max_bytes=10 * MIB, into=tmp_path)
    assert caught.value.permanent


async def test_a_forgotten_job_s_video_is_gone(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    url = _video_url(sim, "forgotten")
    sim.forget_job("forgotten")
    policy = UrlPolicy.from_entries([sim.base_url])

    with pytest.raises(SourceGone):
        await download(http, url, policy=policy, max_bytes=10 * MIB, into=tmp_path)


async def test_a_cut_download_is_transient_and_leaves_no_file(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sim.config.videos.cut_after_bytes = 300_000

    with pytest.raises(TransferFailed) as caught:
        await _fetch(sim, http, tmp_path)
    assert not caught.value.permanent
    assert sim.counters.video_faults_injected == 1
    assert _files_in(tmp_path) == []


async def test_a_5xx_download_is_transient(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sim.config.videos.fail_next = 1
    url = _video_url(sim)
    policy = UrlPolicy.from_entries([sim.base_url])

    with pytest.raises(TransferFailed, match="503") as caught:
        await download(http, url, policy=policy, max_bytes=10 * MIB, into=tmp_path)
    assert not caught.value.permanent
    got = await download(http, url, policy=policy, max_bytes=10 * MIB, into=tmp_path)
    assert got.size == MIB


async def test_a_trickling_origin_is_cut_by_the_minimum_throughput(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """A loopback origin sends a video's first byte, then nothing until the test ends: no
    read timeout of the attempt's own fires for minutes. The window is short and the minimum
    far above what even a whole video could reach in it, so the attempt is cut however fast or
    slow this machine is."""
    sent, release = asyncio.Event(), asyncio.Event()

    async def trickle() -> AsyncIterator[bytes]:
        yield b"\x00"
        sent.set()
        await release.wait()

    async def video(request: Request) -> Response:
        return StreamingResponse(trickle(), media_type="video/mp4")

    app = Starlette(routes=[Route("/video/{name}", video)])
    limits = AttemptLimits(
        deadline_seconds=3600, min_bytes_per_second=100 * MIB, window_seconds=0.2
    )
    async with serve(app) as origin:
        policy = UrlPolicy.from_entries([origin])

        async def copy(progress: Progress) -> Downloaded:
            return await download(
                http,
                f"{origin}/video/v.mp4",
                policy=policy,
                max_bytes=10 * MIB,
                into=tmp_path,
                progress=progress,
            )

        with pytest.raises(TransferFailed, match="under the minimum") as caught:
            await within_limits(copy, limits)
        release.set()  # the server's clean stop waits for the request it still serves
    assert sent.is_set()
    assert not caught.value.permanent
    assert _files_in(tmp_path) == []


async def test_an_undeclared_size_over_the_cap_stops_the_download(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    sim.config.videos.send_content_length = False
    sim.config.videos.size_bytes = 50 * MIB

    with pytest.raises(TooLarge, match="cap"):
        await _fetch(sim, http, tmp_path, max_bytes=MIB)
    assert _files_in(tmp_path) == []
    assert sim.counters.video_bytes_sent < 50 * MIB


async def test_the_stand_in_speaks_tus_strictly(
    storage: StorageStandIn, http: httpx.AsyncClient
) -> None:
    auth = {"apikey": KEY, "authorization": f"Bearer {KEY}"}
    create_url = f"{storage.url}/storage/v1/upload/resumable"
    metadata = "bucketName dmlkZW9z,objectName cC9qLm1wNA=="  # videos, p/j.mp4
    tus = {"tus-resumable": "1.0.0"}

    no_version = await http.post(
        create_url, headers=auth | {"upload-length": "10", "upload-metadata": metadata}
    )
    bad_metadata = await http.post(
        create_url, headers=auth | tus | {"upload-length": "10", "upload-metadata": "x !!"}
    )
    created = await http.post(
        create_url, headers=auth | tus | {"upload-length": "10", "upload-metadata": metadata}
    )
    location = created.headers["location"]
    chunk = auth | tus | {"content-type": "application/offset+octet-stream"}
    wrong_offset = await http.patch(location, headers=chunk | {"upload-offset": "5"}, content=b"x")
    wrong_type = await http.patch(
        location, headers=auth | tus | {"upload-offset": "0"}, content=b"x"
    )
    first = await http.patch(location, headers=chunk | {"upload-offset": "0"}, content=b"01234")
    head = await http.head(location, headers=auth | tus)
    rest = await http.patch(location, headers=chunk | {"upload-offset": "5"}, content=b"56789")
    gone = await http.head(location, headers=auth | tus)

    assert no_version.status_code == 412
    assert bad_metadata.status_code == 400
    assert created.status_code == 201
    assert wrong_offset.status_code == 409
    assert wrong_type.status_code == 415
    assert (first.status_code, first.headers["upload-offset"]) == (204, "5")
    assert head.headers["upload-offset"] == "5"
    assert (rest.status_code, rest.headers["upload-offset"]) == (204, "10")
    assert gone.status_code == 404  # finished uploads are no longer open
    public = await http.get(storage.public_url(BUCKET, "p/j.mp4"))
    assert public.content == b"0123456789"
