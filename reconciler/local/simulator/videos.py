"""The videos behind the simulator's video URLs: real MP4 bytes, generated while they are sent.

`GET /video/os/sim/ws/2/vi/{videoUUID}.mp4` answers a minimal valid MP4 container — an `ftyp`
box, a `moov` box holding a movie header (`mvhd`), and an `mdat` box padding the file to
`VideoFiles.size_bytes` — with faults from `VideoFiles`: slowness, 404 once retention has
passed, a connection cut mid-body, 5xx. The padding is deterministic per video and differs in
every 64 KiB block, so a copy that repeats or skips a block does not hash the same.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from reconciler.local.simulator.config import VideoFiles
from reconciler.local.simulator.state import VIDEO_PATH_PREFIX

if TYPE_CHECKING:
    from reconciler.local.simulator.core import RunwareSimulator

VIDEO_ROUTE = VIDEO_PATH_PREFIX + "{name}"
_BLOCK = 64 * 1024
_PIECE_BLOCKS = 4
_MOVIE_TIMESCALE = 1000


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _movie_header() -> bytes:
    """`mvhd` version 0: times, timescale, duration 0, rate 1.0, volume 1.0, unity matrix."""
    matrix = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)
    payload = (
        struct.pack(">I", 0)  # version 0, no flags
        + struct.pack(">IIII", 0, 0, _MOVIE_TIMESCALE, 0)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + bytes(10)  # reserved
        + matrix
        + bytes(24)  # pre_defined
        + struct.pack(">I", 1)  # next_track_ID
    )
    return _box(b"mvhd", payload)


_FTYP = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
_MOOV = _box(b"moov", _movie_header())
MIN_VIDEO_BYTES = len(_FTYP) + len(_MOOV) + 16


def _mdat_header(payload: int) -> bytes:
    if 8 + payload <= 0xFFFFFFFF:
        return struct.pack(">I", 8 + payload) + b"mdat"
    # A 64-bit `largesize` after `size == 1`.
    return struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + payload)


def video_bytes(video_uuid: str, size: int) -> Iterator[bytes]:
    """The video's bytes in pieces of up to 256 KiB; exactly `max(size, MIN_VIDEO_BYTES)`."""
    size = max(size, MIN_VIDEO_BYTES)
    head = _FTYP + _MOOV
    payload = size - len(head) - (8 if size - len(head) <= 0xFFFFFFFF else 16)
    yield head + _mdat_header(payload)
    base = random.Random(video_uuid).randbytes(_BLOCK)
    left = payload
    index = 0
    while left > 0:
        blocks = []
        for _ in range(_PIECE_BLOCKS):
            blocks.append(index.to_bytes(8, "big") + base[8:])
            index += 1
        piece = b"".join(blocks)[:left]
        left -= len(piece)
        yield piece


def video_size(size: int) -> int:
    return max(size, MIN_VIDEO_BYTES)


class _VideoResponse(Response):
    """Streams the generated video, paced and possibly cut (a plain Response cannot cut)."""

    def __init__(self, sim: RunwareSimulator, video_uuid: str, headers: dict[str, str]) -> None:
        # Not Response.__init__: it would add `content-length: 0` for the empty body.
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self._sim = sim
        self._video_uuid = video_uuid

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self._sim.config.videos
        counters = self._sim.counters
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        sent = 0
        async for piece in _paced(video_bytes(self._video_uuid, settings.size_bytes), settings):
            cut = settings.cut_after_bytes
            if cut is not None and sent + len(piece) > cut:
                rest = piece[: cut - sent]
                await send({"type": "http.response.body", "body": rest, "more_body": True})
                counters.video_bytes_sent += cut - sent
                counters.video_faults_injected += 1
                # Returning with the body unfinished makes uvicorn close the connection (and
                # log one line), which is what a client sees when a CDN stream breaks.
                return
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            sent += len(piece)
            counters.video_bytes_sent += len(piece)
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _paced(pieces: Iterator[bytes], settings: VideoFiles) -> AsyncIterator[bytes]:
    rate = settings.bytes_per_second
    for piece in pieces:
        yield piece
        if rate > 0:
            await asyncio.sleep(len(piece) / rate)


def _not_found() -> Response:
    return JSONResponse({"message": "Not Found"}, status_code=404)


async def serve_video(sim: RunwareSimulator, request: Request) -> Response:
    settings = sim.config.videos
    counters = sim.counters
    counters.video_requests += 1
    name = request.path_params["name"]
    if not name.endswith(".mp4"):
        return _not_found()
    job = sim.state.video_job(name.removesuffix(".mp4"))
    now = sim.now()
    if job is None or job.outcome != "success" or not job.finished(now):
        return _not_found()
    if settings.retention_seconds is not None and now > job.finish_at + settings.retention_seconds:
        return _not_found()
    if settings.fail_next > 0:
        settings.fail_next -= 1
        counters.video_faults_injected += 1
        return JSONResponse({"message": "simulated failure"}, status_code=settings.fail_status)
    headers = {"content-type": settings.content_type}
    if settings.send_content_length:
        headers["content-length"] = str(video_size(settings.size_bytes))
    return _VideoResponse(sim, name.removesuffix(".mp4"), headers)
