"""Uploading to Supabase Storage: the headers Storage wants, TUS above the threshold, resuming
from the server's offset, and each answer classified. Storage is played by MockTransport."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from reconciler.archive.transfer import (
    ArchiveFailure,
    Downloaded,
    StorageRefused,
    StorageUploader,
    TooLarge,
    TransferFailed,
)
from reconciler.backoff import Backoff

SUPABASE = "https://ref.supabase.co"
KEY = "service-role-key"
FAST = Backoff(base=0.0, cap=0.0)

Handler = Callable[[httpx.Request], httpx.Response]


def _source(tmp_path: Path, size: int) -> Downloaded:
    data = bytes(i % 251 for i in range(size))
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    return Downloaded(path, size, hashlib.sha256(data).hexdigest(), "video/mp4")


def _uploader(
    handler: Handler,
    *,
    resumable_threshold: int = 6 * 1024 * 1024,
    chunk_size: int = 6 * 1024 * 1024,
    retries: int = 4,
) -> tuple[StorageUploader, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    uploader = StorageUploader(
        client,
        SUPABASE,
        KEY,
        resumable_threshold=resumable_threshold,
        chunk_size=chunk_size,
        retries=retries,
        backoff=FAST,
    )
    return uploader, client


class FakeTus:
    """A TUS server in memory, answering the requests it is sent; can fail PATCHes."""

    def __init__(self, *, fail_patches: int = 0, partial: int = 0) -> None:
        self.data = bytearray()
        self.length = 0
        self.metadata: dict[str, str] = {}
        self.create_headers: httpx.Headers | None = None
        self.requests: list[str] = []
        self.patched_bytes = 0
        self.fail_patches = fail_patches
        # Bytes a failing PATCH still stores before the connection breaks.
        self.partial = partial

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.method)
        if request.method == "POST":
            self.create_headers = request.headers
            self.length = int(request.headers["upload-length"])
            for item in request.headers["upload-metadata"].split(","):
                key, value = item.split(" ")
                self.metadata[key] = base64.b64decode(value).decode()
            return httpx.Response(201, headers={"location": "/storage/v1/upload/resumable/u1"})
        if request.method == "HEAD":
            return httpx.Response(200, headers={"upload-offset": str(len(self.data))})
        assert request.method == "PATCH"
        assert str(request.url) == f"{SUPABASE}/storage/v1/upload/resumable/u1"
        if int(request.headers["upload-offset"]) != len(self.data):
            return httpx.Response(409)
        body = request.read()
        self.patched_bytes += len(body)
        if self.fail_patches > 0:
            self.fail_patches -= 1
            self.data += body[: self.partial]
            raise httpx.WriteError("connection reset by peer", request=request)
        self.data += body
        return httpx.Response(204, headers={"upload-offset": str(len(self.data))})


async def test_a_small_file_goes_in_one_upsert_request(tmp_path: Path) -> None:
    source = _source(tmp_path, 1000)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json={"Key": "videos/p/j.mp4", "Id": "1"})

    uploader, client = _uploader(handler)
    async with client:
        await uploader.upload("videos", "p 1/j.mp4", source)

    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/storage/v1/object/videos/p%201/j.mp4"
    assert request.headers["x-upsert"] == "true"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["apikey"] == KEY
    assert request.headers["content-type"] == "video/mp4"
    assert request.headers["content-length"] == "1000"
    assert request.content == source.path.read_bytes()


async def test_above_the_threshold_a_tus_upload_sends_every_chunk(tmp_path: Path) -> None:
    source = _source(tmp_path, 2500)
    tus = FakeTus()
    uploader, client = _uploader(tus, resumable_threshold=2000, chunk_size=1000)
    async with client:
        await uploader.upload("videos", "p/j.mp4", source)

    assert bytes(tus.data) == source.path.read_bytes()
    assert tus.requests == ["POST", "PATCH", "PATCH", "PATCH"]
    assert tus.metadata == {
        "bucketName": "videos",
        "objectName": "p/j.mp4",
        "contentType": "video/mp4",
    }
    assert tus.create_headers is not None
    assert tus.create_headers["upload-length"] == "2500"
    assert tus.create_headers["tus-resumable"] == "1.0.0"
    assert tus.create_headers["x-upsert"] == "true"
    assert tus.create_headers["apikey"] == KEY


async def test_below_the_threshold_no_tus_upload_is_made(tmp_path: Path) -> None:
    source = _source(tmp_path, 1999)
    methods: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        methods.append(f"{request.method} {request.url.path}")
        return httpx.Response(200, json={})

    uploader, client = _uploader(handler, resumable_threshold=2000)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert methods == ["POST /storage/v1/object/videos/j.mp4"]


async def test_a_dropped_patch_resumes_from_the_servers_offset(tmp_path: Path) -> None:
    source = _source(tmp_path, 3000)
    tus = FakeTus(fail_patches=1, partial=600)
    uploader, client = _uploader(tus, resumable_threshold=1, chunk_size=1000)
    async with client:
        await uploader.upload("videos", "j.mp4", source)

    assert bytes(tus.data) == source.path.read_bytes()
    assert tus.requests[:3] == ["POST", "PATCH", "HEAD"]
    assert tus.requests.count("POST") == 1
    # The server kept 600 bytes of the dropped chunk: only its other 400 were sent twice.
    assert tus.patched_bytes == 3000 + 400


async def test_tus_gives_up_after_its_retries_as_a_transient_failure(tmp_path: Path) -> None:
    source = _source(tmp_path, 3000)
    tus = FakeTus(fail_patches=100)
    uploader, client = _uploader(tus, resumable_threshold=1, chunk_size=1000, retries=2)
    async with client:
        with pytest.raises(TransferFailed, match="WriteError") as caught:
            await uploader.upload("videos", "j.mp4", source)
    assert not caught.value.permanent


async def test_failures_apart_do_not_use_up_the_retries(tmp_path: Path) -> None:
    """Every other PATCH breaks; each one in between makes progress, so one retry suffices."""
    source = _source(tmp_path, 4000)
    tus = FakeTus()
    patches = {"count": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            patches["count"] += 1
            if patches["count"] % 2 == 1:
                raise httpx.ReadError("connection reset by peer", request=request)
        return tus(request)

    uploader, client = _uploader(handler, resumable_threshold=1, chunk_size=1000, retries=1)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert bytes(tus.data) == source.path.read_bytes()
    assert tus.requests.count("POST") == 1


async def test_a_lost_tus_upload_starts_again(tmp_path: Path) -> None:
    source = _source(tmp_path, 2000)
    tus = FakeTus(fail_patches=1)
    lost = {"once": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD" and lost.pop("once", False):
            tus.data.clear()
            return httpx.Response(404)
        return tus(request)

    uploader, client = _uploader(handler, resumable_threshold=1, chunk_size=1000)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert bytes(tus.data) == source.path.read_bytes()
    assert tus.requests.count("POST") == 2


def _answer(status: int, body: object) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(status, json=body)

    return handler


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (413, {"statusCode": "413", "error": "Payload too large"}, TooLarge, "size"),
        (400, {"statusCode": "413", "error": "Payload too large"}, TooLarge, "size"),
        (401, {"message": "Invalid API key"}, TransferFailed, "rejected the service role key"),
        (403, {"statusCode": "403", "error": "x"}, TransferFailed, "rejected the service role"),
        (400, {"statusCode": "403", "error": "Unauthorized"}, TransferFailed, "rejected the"),
        (500, {"statusCode": "500", "error": "Internal"}, TransferFailed, "HTTP 500"),
        (503, {}, TransferFailed, "HTTP 503"),
        (400, {"statusCode": "404", "error": "Bucket not found"}, TransferFailed, "Bucket not"),
        (400, {"statusCode": "400", "error": "InvalidKey"}, StorageRefused, "InvalidKey"),
        (400, {"error": "Bad Request"}, StorageRefused, "HTTP 400"),
    ],
)
@pytest.mark.parametrize("size", [10, 5000])
async def test_storage_answers_are_classified(
    tmp_path: Path,
    status: int,
    body: object,
    kind: type[ArchiveFailure],
    reason: str,
    size: int,
) -> None:
    source = _source(tmp_path, size)
    uploader, client = _uploader(_answer(status, body), resumable_threshold=1000, retries=1)
    async with client:
        with pytest.raises(kind, match=reason) as caught:
            await uploader.upload("videos", "j.mp4", source)
    assert type(caught.value) is kind
    assert caught.value.permanent is (kind in (TooLarge, StorageRefused))


async def test_5xx_is_retried_within_the_attempt(tmp_path: Path) -> None:
    source = _source(tmp_path, 100)
    answers = [503, 502, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        return httpx.Response(answers.pop(0), json={})

    uploader, client = _uploader(handler, retries=3)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert answers == []


async def test_a_rejected_key_is_not_retried_within_the_attempt(tmp_path: Path) -> None:
    source = _source(tmp_path, 100)
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(403, json={"statusCode": "403", "error": "Unauthorized"})

    uploader, client = _uploader(handler, retries=3)
    async with client:
        with pytest.raises(TransferFailed):
            await uploader.upload("videos", "j.mp4", source)
    assert calls == [1]


async def test_check_bucket_passes_for_an_existing_bucket() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "videos", "name": "videos", "public": True})

    uploader, client = _uploader(handler)
    async with client:
        await uploader.check_bucket("videos")
    assert seen[0].url == f"{SUPABASE}/storage/v1/bucket/videos"
    assert seen[0].headers["apikey"] == KEY


@pytest.mark.parametrize("status", [400, 404])
async def test_check_bucket_names_a_missing_bucket(status: int) -> None:
    uploader, client = _uploader(
        _answer(status, {"statusCode": "404", "error": "Bucket not found"})
    )
    async with client:
        with pytest.raises(TransferFailed) as caught:
            await uploader.check_bucket("clips-archive")
    assert caught.value.reason == "Storage bucket 'clips-archive' does not exist"
    assert "\n" not in caught.value.reason


async def test_check_bucket_says_when_the_key_is_rejected() -> None:
    uploader, client = _uploader(_answer(401, {"message": "Invalid API key"}))
    async with client:
        with pytest.raises(TransferFailed, match="rejected the service role key"):
            await uploader.check_bucket("videos")


def test_nonsense_settings_are_refused() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ValueError, match="chunk_size"):
        StorageUploader(client, SUPABASE, KEY, chunk_size=0)


# --- A 400 that is not a duplicate: the object is unusable, asked once ------------------------


@pytest.mark.parametrize("size", [10, 5000], ids=["standard", "tus"])
async def test_a_400_is_permanent_and_asked_once(tmp_path: Path, size: int) -> None:
    source = _source(tmp_path, size)
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        asked.append(request.method)
        body = {"statusCode": "400", "error": "InvalidKey", "message": "Invalid key: p/\x01"}
        return httpx.Response(400, json=body)

    uploader, client = _uploader(handler, resumable_threshold=1000, retries=3)
    async with client:
        with pytest.raises(StorageRefused, match="Invalid key") as caught:
            await uploader.upload("videos", "j.mp4", source)
    assert caught.value.permanent
    assert asked == ["POST"]


async def test_a_duplicate_under_http_400_is_retried_not_given_up(tmp_path: Path) -> None:
    """Storage says "already exists" as HTTP 400 with statusCode 409: another writer on the
    path, worth another try (never a reason to give the video up)."""
    source = _source(tmp_path, 100)
    answers = [(400, {"statusCode": "409", "error": "Duplicate"}), (200, {})]

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        status, body = answers.pop(0)
        return httpx.Response(status, json=body)

    uploader, client = _uploader(handler, retries=1)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert answers == []


# --- The service role key goes to SUPABASE_URL's origin only ----------------------------------


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/storage/v1/upload/resumable/u1",
        "//evil.example/storage/v1/upload/resumable/u1",
        "http://ref.supabase.co/storage/v1/upload/resumable/u1",
        "https://ref.supabase.co:8443/storage/v1/upload/resumable/u1",
        "https://ref.supabase.co.evil.example/storage/v1/upload/resumable/u1",
    ],
)
async def test_a_location_on_another_origin_is_never_asked(tmp_path: Path, location: str) -> None:
    source = _source(tmp_path, 3000)
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        if request.method == "POST":
            return httpx.Response(201, headers={"location": location})
        return httpx.Response(204, headers={"upload-offset": "3000"})

    uploader, client = _uploader(handler, resumable_threshold=1, retries=3)
    async with client:
        with pytest.raises(TransferFailed, match="another origin") as caught:
            await uploader.upload("videos", "j.mp4", source)

    assert [(r.method, str(r.url)) for r in asked] == [
        ("POST", f"{SUPABASE}/storage/v1/upload/resumable")
    ]
    assert "SUPABASE_URL" in caught.value.reason
    assert not caught.value.permanent


@pytest.mark.parametrize(
    "location",
    [
        "/storage/v1/upload/resumable/u1",
        f"{SUPABASE}/storage/v1/upload/resumable/u1",
        "https://REF.supabase.co:443/storage/v1/upload/resumable/u1",
    ],
)
async def test_a_location_on_the_projects_origin_is_followed(tmp_path: Path, location: str) -> None:
    source = _source(tmp_path, 2500)
    tus = FakeTus()

    def handler(request: httpx.Request) -> httpx.Response:
        answer = tus(request)
        if request.method == "POST":
            return httpx.Response(201, headers={"location": location})
        return answer

    uploader, client = _uploader(handler, resumable_threshold=1, chunk_size=1000)
    async with client:
        await uploader.upload("videos", "j.mp4", source)
    assert bytes(tus.data) == source.path.read_bytes()
