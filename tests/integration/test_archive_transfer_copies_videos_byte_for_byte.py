"""A video copied from the simulator into the Storage stand-in arrives byte for byte, through
a standard upload or a TUS upload, and uploading it again is harmless."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from reconciler.archive.transfer import Downloaded, StorageUploader, download
from reconciler.backoff import Backoff
from reconciler.clips import UrlPolicy
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, VideoFiles
from reconciler.local.storage import StorageStandIn

KEY = "service-role-key"
BUCKET = "videos"
MIB = 1024 * 1024
FAST = Backoff(base=0.001, cap=0.01)


@pytest.fixture
async def sim() -> AsyncIterator[RunwareSimulator]:
    config = SimulatorConfig(seed=5, videos=VideoFiles(on_own_origin=True))
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


async def _fetch(
    sim: RunwareSimulator, http: httpx.AsyncClient, into: Path, size: int
) -> Downloaded:
    sim.config.videos.size_bytes = size
    job = sim.add_job(f"task-{size}", duration=0)
    policy = UrlPolicy.from_entries([sim.base_url])
    return await download(http, job.video_urls()[0], policy=policy, max_bytes=size, into=into)


async def _public_sha256(http: httpx.AsyncClient, url: str) -> tuple[str, str, int]:
    digest = hashlib.sha256()
    size = 0
    async with http.stream("GET", url) as response:
        assert response.status_code == 200
        async for piece in response.aiter_bytes():
            digest.update(piece)
            size += len(piece)
        return digest.hexdigest(), response.headers["content-type"], size


def _top_level_boxes(data: bytes) -> list[tuple[bytes, int]]:
    boxes: list[tuple[bytes, int]] = []
    at = 0
    while at < len(data):
        (size,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if size == 1:
            (size,) = struct.unpack(">Q", data[at + 8 : at + 16])
        assert size >= 8
        boxes.append((kind, size))
        at += size
    assert at == len(data)
    return boxes


async def test_the_simulator_serves_an_mp4_container_of_the_configured_size(
    sim: RunwareSimulator, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    got = await _fetch(sim, http, tmp_path, 300_000)

    data = got.path.read_bytes()
    assert len(data) == got.size == 300_000
    assert [kind for kind, _ in _top_level_boxes(data)] == [b"ftyp", b"moov", b"mdat"]
    assert got.sha256 == hashlib.sha256(data).hexdigest()
    assert got.content_type == "video/mp4"


async def test_a_small_video_goes_through_a_standard_upload(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    got = await _fetch(sim, http, tmp_path, 2 * MIB)
    uploader = StorageUploader(http, storage.url, KEY, backoff=FAST)

    await uploader.check_bucket(BUCKET)
    await uploader.upload(BUCKET, "project/job.mp4", got)

    assert storage.counters.standard_uploads == 1
    assert storage.counters.tus_creates == 0
    sha, content_type, size = await _public_sha256(
        http, storage.public_url(BUCKET, "project/job.mp4")
    )
    assert (sha, content_type, size) == (got.sha256, "video/mp4", got.size)


async def test_a_large_video_goes_through_a_tus_upload(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
) -> None:
    got = await _fetch(sim, http, tmp_path, 15 * MIB + 123)
    uploader = StorageUploader(http, storage.url, KEY, backoff=FAST)

    await uploader.upload(BUCKET, "project/job.mp4", got)

    assert storage.counters.standard_uploads == 0
    assert storage.counters.tus_creates == 1
    assert storage.counters.tus_patches == 3  # 6 MiB, 6 MiB, the rest
    assert storage.open_uploads() == 0
    sha, content_type, size = await _public_sha256(
        http, storage.public_url(BUCKET, "project/job.mp4")
    )
    assert (sha, content_type, size) == (got.sha256, "video/mp4", got.size)


@pytest.mark.parametrize("threshold", [1, 10**12], ids=["tus", "standard"])
async def test_uploading_the_same_path_again_is_harmless(
    sim: RunwareSimulator,
    storage: StorageStandIn,
    http: httpx.AsyncClient,
    tmp_path: Path,
    threshold: int,
) -> None:
    got = await _fetch(sim, http, tmp_path, 700_000)
    uploader = StorageUploader(http, storage.url, KEY, resumable_threshold=threshold, backoff=FAST)

    await uploader.upload(BUCKET, "p/j.mp4", got)
    await uploader.upload(BUCKET, "p/j.mp4", got)

    sha, _, _ = await _public_sha256(http, storage.public_url(BUCKET, "p/j.mp4"))
    assert sha == got.sha256
    assert storage.counters.upload_bytes_received == 2 * got.size
