"""One archive attempt, end to end over httpx.MockTransport: a copy records the object, its
size and checksum; a failure is recorded as permanent (video gone, unusable path) or transient
(Storage trouble, anything unexpected) with a retry delay from the task's attempts."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

import httpx
import pytest

from reconciler.archive.paths import ObjectPathTemplate
from reconciler.archive.transfer import StorageUploader
from reconciler.archive.worker import ArchivePolicy, ArchiveWorker
from reconciler.backoff import Backoff
from reconciler.clips import UrlPolicy
from reconciler.ports import (
    ArchiveBackfillPage,
    ArchivedObject,
    ArchiveFailed,
    ArchiveStats,
    ArchiveSucceeded,
    ArchiveTask,
)

SUPABASE = "https://abc.supabase.co"
PROJECT = UUID("00000000-0000-4000-8000-0000000000aa")
VIDEO = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64
RETRY = Backoff(base=30.0, cap=3600.0)


@dataclass
class RecordingStore:
    """The two calls an attempt ends with, recorded; the rest of ArchiveStore unused."""

    succeeded: list[tuple[ArchiveTask, ArchivedObject]] = field(default_factory=list)
    failed: list[tuple[ArchiveTask, str, bool, float, int]] = field(default_factory=list)

    async def archive_succeeded(
        self, task: ArchiveTask, archived: ArchivedObject
    ) -> ArchiveSucceeded:
        self.succeeded.append((task, archived))
        return "archived"

    async def archive_failed(
        self,
        task: ArchiveTask,
        error: str,
        *,
        permanent: bool,
        retry_in_seconds: float,
        max_attempts: int,
    ) -> ArchiveFailed:
        self.failed.append((task, error, permanent, retry_in_seconds, max_attempts))
        return "given_up" if permanent else "queued"

    async def set_archiving(self, enabled: bool) -> int:
        raise AssertionError("not used by an attempt")

    async def claim_archive_tasks(
        self, owner: str, limit: int, lease_seconds: float, max_attempts: int
    ) -> list[ArchiveTask]:
        raise AssertionError("not used by an attempt")

    async def renew_archive_leases(self, owner: str, lease_seconds: float) -> int:
        raise AssertionError("not used by an attempt")

    async def release_archive_leases(self, owner: str) -> int:
        raise AssertionError("not used by an attempt")

    async def archive_backfill_page(
        self,
        after: UUID | None,
        limit: int,
        source_prefixes: Sequence[str],
        archived_prefix: str,
    ) -> ArchiveBackfillPage:
        raise AssertionError("not used by an attempt")

    async def archive_stats(self, *, by_state: bool = False) -> ArchiveStats:
        raise AssertionError("not used by an attempt")


@dataclass
class FakeServers:
    """Runware's video host and Supabase Storage, as one MockTransport handler."""

    video_status: int = 200
    storage_status: int = 200
    explode: bool = False
    uploads: dict[str, bytes] = field(default_factory=dict)
    requests: int = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.explode:
            raise ValueError("a bug somewhere below")
        if request.url.host == "vm.runware.ai":
            if self.video_status != 200:
                return httpx.Response(self.video_status)
            return httpx.Response(200, content=VIDEO, headers={"content-type": "video/mp4"})
        if request.method == "POST" and request.url.path.startswith("/storage/v1/object/"):
            if self.storage_status != 200:
                return httpx.Response(self.storage_status, json={"message": "unavailable"})
            self.uploads[request.url.path] = request.read()
            return httpx.Response(200, json={"Key": request.url.path})
        return httpx.Response(404)


def _worker(servers: FakeServers, store: RecordingStore, template: str) -> ArchiveWorker:
    client = httpx.AsyncClient(transport=httpx.MockTransport(servers))
    uploader = StorageUploader(client, SUPABASE, "service-key", retries=0)
    policy = ArchivePolicy(
        supabase_url=SUPABASE,
        bucket="videos",
        path=ObjectPathTemplate.parse(template),
        max_bytes=1024 * 1024,
        retry=RETRY,
    )
    return ArchiveWorker(
        store,
        client,
        uploader,
        UrlPolicy.from_entries(["vm.runware.ai"]),
        policy,
        owner="unit",
        rng=random.Random(3),
    )


def _task(job: str = "job-1", attempts: int = 1) -> ArchiveTask:
    return ArchiveTask(PROJECT, job, f"https://vm.runware.ai/video/{job}.mp4", attempts)


async def test_a_copy_records_the_object_its_size_and_checksum() -> None:
    servers, store = FakeServers(), RecordingStore()
    worker = _worker(servers, store, "{project_id}/{job_id}.mp4")

    await worker.archive(_task())

    [(_, archived)] = store.succeeded
    assert archived == ArchivedObject(
        object_path=f"{PROJECT}/job-1.mp4",
        archived_url=f"{SUPABASE}/storage/v1/object/public/videos/{PROJECT}/job-1.mp4",
        size_bytes=len(VIDEO),
        sha256=hashlib.sha256(VIDEO).hexdigest(),
    )
    assert servers.uploads == {f"/storage/v1/object/videos/{PROJECT}/job-1.mp4": VIDEO}
    assert (worker.counts.outcomes["archived"], worker.counts.bytes_archived) == (1, len(VIDEO))
    assert store.failed == []


@pytest.mark.parametrize("status", [404, 410])
async def test_a_video_runware_deleted_is_given_up(status: int) -> None:
    servers, store = FakeServers(video_status=status), RecordingStore()

    await _worker(servers, store, "{project_id}/{job_id}.mp4").archive(_task())

    [(_, reason, permanent, _, _)] = store.failed
    assert permanent
    assert str(status) in reason
    assert servers.uploads == {}


async def test_storage_trouble_is_retried_after_a_backoff_from_the_attempts() -> None:
    servers, store = FakeServers(storage_status=503), RecordingStore()
    worker = _worker(servers, store, "{project_id}/{job_id}.mp4")

    await worker.archive(_task(attempts=3))

    [(_, reason, permanent, retry_in, max_attempts)] = store.failed
    assert not permanent
    assert "503" in reason
    # The third attempt failed: the next waits about base * 2**2, jittered into its upper half.
    assert RETRY.ceiling(2) / 2 <= retry_in <= RETRY.ceiling(2)
    assert max_attempts == 10
    assert worker.counts.outcomes["retried"] == 1


async def test_an_unexpected_error_is_transient_not_a_crash() -> None:
    servers, store = FakeServers(explode=True), RecordingStore()

    await _worker(servers, store, "{project_id}/{job_id}.mp4").archive(_task())

    [(_, reason, permanent, _, _)] = store.failed
    assert not permanent
    assert "a bug somewhere below" in reason


async def test_a_job_id_that_cannot_name_an_object_is_given_up_without_a_request() -> None:
    servers, store = FakeServers(), RecordingStore()

    await _worker(servers, store, "{project_id}/{job_id}").archive(_task(job=".."))

    [(_, reason, permanent, _, _)] = store.failed
    assert permanent
    assert "no object path" in reason
    assert servers.requests == 0
