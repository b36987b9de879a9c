"""Downloading a video to archive: only from allowed origins, capped while reading, hashed,
and refused unless it looks like a video. Runware is played by httpx.MockTransport."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from reconciler.archive.transfer import (
    ArchiveFailure,
    Downloaded,
    NotAVideo,
    SourceGone,
    TooLarge,
    TransferFailed,
    download,
)
from reconciler.clips import UrlPolicy

ORIGIN = "https://vm.runware.ai"
VIDEO_URL = f"{ORIGIN}/video/os/a/ws/2/vi/v1.mp4"
POLICY = UrlPolicy.from_entries(["vm.runware.ai"])
MP4 = b"\x00\x00\x00\x1cftypisom" + bytes(range(256)) * 40

Handler = Callable[[httpx.Request], httpx.Response]


async def _download(
    handler: Handler, tmp_path: Path, *, url: str = VIDEO_URL, max_bytes: int = 10**6
) -> Downloaded:
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        return await download(client, url, policy=POLICY, max_bytes=max_bytes, into=tmp_path)


def _files_in(directory: Path) -> list[Path]:
    """What a failed download left behind (nothing, it must clean up)."""
    return list(directory.iterdir())


def _video(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "video/mp4"}, content=MP4)


async def test_the_file_holds_the_bytes_with_their_size_and_sha256(tmp_path: Path) -> None:
    got = await _download(_video, tmp_path)

    assert got.path.parent == tmp_path
    assert got.path.read_bytes() == MP4
    assert got.size == len(MP4)
    assert got.sha256 == hashlib.sha256(MP4).hexdigest()
    assert got.content_type == "video/mp4"


async def test_into_may_name_the_file_itself(tmp_path: Path) -> None:
    target = tmp_path / "video.mp4"
    got = await _download(_video, target)
    assert got.path == target
    assert target.read_bytes() == MP4


async def test_a_url_off_the_allow_list_is_not_fetched(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return _video(request)

    with pytest.raises(NotAVideo, match="allow-list") as caught:
        await _download(handler, tmp_path, url="https://evil.example/v.mp4")
    assert caught.value.permanent
    assert asked == []


async def test_a_redirect_to_another_host_is_refused(tmp_path: Path) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        if request.url.host == "vm.runware.ai":
            return httpx.Response(302, headers={"location": "https://evil.example/v.mp4"})
        return _video(request)

    with pytest.raises(NotAVideo, match="another origin") as caught:
        await _download(handler, tmp_path)
    assert caught.value.permanent
    assert asked == [VIDEO_URL]
    assert _files_in(tmp_path) == []


async def test_a_redirect_to_another_allowed_host_is_refused_too(tmp_path: Path) -> None:
    policy_both = UrlPolicy.from_entries(["vm.runware.ai", "im.runware.ai"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "vm.runware.ai":
            return httpx.Response(302, headers={"location": "https://im.runware.ai/v.mp4"})
        return _video(request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(NotAVideo, match="another origin"):
            await download(client, VIDEO_URL, policy=policy_both, max_bytes=10**6, into=tmp_path)


async def test_a_redirect_within_the_origin_is_followed(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("v1.mp4"):
            return httpx.Response(301, headers={"location": "/video/moved.mp4"})
        return _video(request)

    got = await _download(handler, tmp_path)
    assert got.path.read_bytes() == MP4


async def test_a_redirect_loop_within_the_origin_ends(tmp_path: Path) -> None:
    hops: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hops.append(request.url.path)
        return httpx.Response(302, headers={"location": f"/hop{len(hops)}.mp4"})

    with pytest.raises(TransferFailed, match="redirected more than"):
        await _download(handler, tmp_path)
    assert len(hops) <= 10


async def test_a_declared_size_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "video/mp4", "content-length": "5000"}, content=b""
        )

    with pytest.raises(TooLarge, match="5000 bytes") as caught:
        await _download(handler, tmp_path, max_bytes=4999)
    assert caught.value.permanent


async def test_the_cap_holds_while_reading_without_a_declared_size(tmp_path: Path) -> None:
    """A chunked answer that never ends: reading stops just past the cap."""
    pulled: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        yield MP4[:1024]
        while True:
            pulled.append(1)
            yield bytes(1024)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "video/mp4"}, content=endless())

    with pytest.raises(TooLarge, match="cap of 100000"):
        await _download(handler, tmp_path, max_bytes=100_000)
    assert len(pulled) < 400
    assert _files_in(tmp_path) == []


async def test_exactly_the_cap_is_accepted(tmp_path: Path) -> None:
    got = await _download(_video, tmp_path, max_bytes=len(MP4))
    assert got.size == len(MP4)


@pytest.mark.parametrize(
    ("status", "kind", "permanent"),
    [
        (404, SourceGone, True),
        (410, SourceGone, True),
        (500, TransferFailed, False),
        (502, TransferFailed, False),
        (503, TransferFailed, False),
        (429, TransferFailed, False),
        (403, TransferFailed, False),
    ],
)
async def test_statuses_are_classified(
    tmp_path: Path, status: int, kind: type[ArchiveFailure], permanent: bool
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="no")

    with pytest.raises(kind, match=str(status)) as caught:
        await _download(handler, tmp_path)
    assert caught.value.permanent is permanent
    assert type(caught.value) is kind


async def test_a_network_failure_is_transient(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransferFailed, match="ConnectError") as caught:
        await _download(handler, tmp_path)
    assert not caught.value.permanent


async def test_a_stream_cut_short_is_transient_and_leaves_no_file(tmp_path: Path) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield MP4[:100]
        raise httpx.RemoteProtocolError("peer closed connection")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "video/mp4"}, content=cut())

    with pytest.raises(TransferFailed, match="peer closed") as caught:
        await _download(handler, tmp_path)
    assert not caught.value.permanent
    assert _files_in(tmp_path) == []


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "image/png"])
async def test_what_is_not_a_video_is_refused(tmp_path: Path, content_type: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=MP4)

    with pytest.raises(NotAVideo, match=content_type) as caught:
        await _download(handler, tmp_path)
    assert caught.value.permanent
    assert _files_in(tmp_path) == []


@pytest.mark.parametrize("content_type", ["application/octet-stream", None])
async def test_a_generic_type_passes_with_an_mp4_signature(
    tmp_path: Path, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=headers, content=MP4)

    got = await _download(handler, tmp_path)
    assert got.content_type == "video/mp4"


async def test_a_generic_type_without_an_mp4_signature_is_refused(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/octet-stream"}, content=b"<html>" * 10
        )

    with pytest.raises(NotAVideo, match="without a video signature"):
        await _download(handler, tmp_path)
    assert _files_in(tmp_path) == []


async def test_another_video_type_keeps_its_type(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "video/webm; codecs=vp9"}, content=b"\x1aE\xdf\xa3"
        )

    got = await _download(handler, tmp_path)
    assert got.content_type == "video/webm"


async def test_a_generic_type_is_refused_from_its_first_bytes(tmp_path: Path) -> None:
    """A large web page served as octet-stream is not downloaded to the end first."""
    pulled: list[int] = []

    async def page() -> AsyncIterator[bytes]:
        yield b"<!doctype html><html>"
        for _ in range(1000):
            pulled.append(1)
            yield b"x" * 1024

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "application/octet-stream"}, content=page()
        )

    with pytest.raises(NotAVideo, match="without a video signature"):
        await _download(handler, tmp_path, max_bytes=10**7)
    assert len(pulled) < 300
    assert _files_in(tmp_path) == []


async def test_the_video_is_asked_for_without_compression(tmp_path: Path) -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return _video(request)

    await _download(handler, tmp_path)
    assert asked[0].headers["accept-encoding"] == "identity"


# --- The type Storage is told comes from the bytes, never from the origin's header ------------

WEB_PAGE = b"<!doctype html><html><script>alert(1)</script></html>" * 4


@pytest.mark.parametrize(
    "content_type", ["video/mp4, text/html", "video/webm", "video/mp4", "video/x-anything"]
)
async def test_a_declared_video_type_is_sniffed_and_mp4_bytes_are_stored_as_mp4(
    tmp_path: Path, content_type: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=MP4)

    got = await _download(handler, tmp_path)

    assert got.content_type == "video/mp4"


@pytest.mark.parametrize("content_type", ["video/mp4, text/html", "video/webm", "video/mp4"])
async def test_a_declared_video_type_without_a_video_signature_is_refused(
    tmp_path: Path, content_type: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": content_type}, content=WEB_PAGE)

    with pytest.raises(NotAVideo, match="without a video signature") as caught:
        await _download(handler, tmp_path)
    assert caught.value.permanent
    assert _files_in(tmp_path) == []


async def test_a_short_body_is_sniffed_too(tmp_path: Path) -> None:
    """Fewer bytes than the sniffing window: checked once the body ends."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "video/mp4"}, content=b"<html>")

    with pytest.raises(NotAVideo, match="without a video signature"):
        await _download(handler, tmp_path)


@pytest.mark.parametrize(
    ("head", "sniffed"),
    [
        (b"\x00\x00\x00\x14ftypqt  ", "video/quicktime"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "video/webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "video/x-matroska"),
    ],
)
async def test_the_type_stored_is_the_one_the_signature_shows(
    tmp_path: Path, head: bytes, sniffed: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "video/mp4"}, content=head + MP4)

    got = await _download(handler, tmp_path)

    assert got.content_type == sniffed
