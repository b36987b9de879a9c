"""Copy one finished video from Runware into Supabase Storage: streamed, bounded, resumable.

Supabase Storage cannot fetch a URL itself, and its Python client (storage3) neither streams
nor resumes, so the bytes pass through here: `download` streams the video to a file (memory
stays flat whatever the size), `StorageUploader.upload` streams that file to Storage's REST
API — one request for small files, TUS resumable uploads above a threshold. The routes, headers
and error shapes relied on are described in docs/supabase-storage.md.

Every failure is an `ArchiveFailure` whose `permanent` says whether retrying can help: a video
Runware deleted, one over the size cap, one that is not a video, or an object Storage refuses
as invalid (a 400 that is not a duplicate) will never archive; network trouble, Storage's 5xx,
and Storage rejecting our key are ours to retry (I11: our own failures never give anything up
for good).

The service role key goes to `SUPABASE_URL`'s origin only: a resumable upload's `Location`
naming anywhere else is refused, not followed. What Storage is told the object is comes from
the file's own first bytes (its signature), never from the origin's `Content-Type`.

`within_limits` runs one attempt under a wall-clock deadline and a minimum throughput
(`AttemptLimits`): an origin trickling a byte at a time cannot hold an archive slot, it ends
as a failed attempt like any other.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import httpx

from reconciler.backoff import Backoff
from reconciler.clips import UrlPolicy
from reconciler.clock import SYSTEM_CLOCK, Clock

# Supabase recommends resumable (TUS) uploads for files above 6 MB; below that a single request
# is cheaper (one round trip instead of three) and a failure costs at most 6 MB to resend.
DEFAULT_RESUMABLE_THRESHOLD = 6 * 1024 * 1024
# Supabase's TUS server takes chunks of exactly 6 MiB (all but the last).
TUS_CHUNK_SIZE = 6 * 1024 * 1024
TUS_VERSION = "1.0.0"
# Redirects followed within the video's own origin; a CDN hop elsewhere is refused.
MAX_REDIRECTS = 5
# The file is read for upload in pieces this large: big enough for throughput, small for memory.
_PIECE = 256 * 1024
# An MP4 file starts with an ISO base media `ftyp` box: 4 size bytes, the type, the brand.
_MP4_SIGNATURE = b"ftyp"
_QUICKTIME_BRAND = b"qt  "
# A WebM (or Matroska) file starts with an EBML header, whose DocType names which.
_EBML_SIGNATURE = b"\x1a\x45\xdf\xa3"
# Enough for the `ftyp` box's brand and for the EBML header's DocType.
_SNIFF_BYTES = 64
# Retries of one upload inside a single archive attempt (resuming a TUS upload counts).
DEFAULT_UPLOAD_RETRIES = 4
DEFAULT_UPLOAD_BACKOFF = Backoff(base=0.5, cap=8.0)


class ArchiveFailure(Exception):
    """Why one archive attempt failed. `permanent` failures will not heal by retrying."""

    permanent: bool = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SourceGone(ArchiveFailure):
    """The video is no longer at its URL (404/410): Runware deleted it."""

    permanent = True


class TooLarge(ArchiveFailure):
    """The video exceeds our cap, or Storage refused its size (413)."""

    permanent = True


class NotAVideo(ArchiveFailure):
    """The URL answered with something that is not a video (or is not allowed to be fetched:
    a URL off the allow-list, a redirect to another origin)."""

    permanent = True


class StorageRefused(ArchiveFailure):
    """Storage answered 400 (not a duplicate): the object key or the request is unusable, and
    sending the same video again gets the same answer."""

    permanent = True


class TransferFailed(ArchiveFailure):
    """A transient failure: network, 5xx, a cut stream, our own key rejected, an attempt cut
    for being too slow, or an upload URL Storage named somewhere we do not send the key."""

    permanent = False


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    sha256: str
    content_type: str


# --- One attempt's limits ---------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptLimits:
    """How long one attempt (download and upload) may take, and how slowly it may move bytes:
    fewer than `min_bytes_per_second * window_seconds` bytes in any window (windows follow
    each other from the attempt's start) cuts it. `min_bytes_per_second=0` checks only the
    deadline."""

    deadline_seconds: float = 600.0
    min_bytes_per_second: int = 64 * 1024
    window_seconds: float = 20.0

    def __post_init__(self) -> None:
        if self.deadline_seconds <= 0 or self.window_seconds <= 0 or self.min_bytes_per_second < 0:
            raise ValueError("deadline_seconds > 0, window_seconds > 0, min_bytes_per_second >= 0")


DEFAULT_ATTEMPT_LIMITS = AttemptLimits()


class Progress:
    """Bytes an attempt has moved, downloaded and uploaded: what its watchdog measures."""

    def __init__(self) -> None:
        self.bytes = 0

    def moved(self, count: int) -> None:
        self.bytes += count


_T = TypeVar("_T")


async def within_limits(
    work: Callable[[Progress], Awaitable[_T]],
    limits: AttemptLimits,
    clock: Clock = SYSTEM_CLOCK,
) -> _T:
    """`work(progress)`'s result, unless it passes the deadline or moves bytes too slowly:
    then it is cancelled (cleaning up as on any cancellation) and TransferFailed says which
    limit cut it. Read timeouts alone cannot do this: an origin sending a byte every few
    seconds never lets one expire."""
    progress = Progress()
    # Measured from here: the work may move bytes before the watchdog first runs.
    watchdog = asyncio.ensure_future(_watch(progress, limits, clock, clock.now()))
    attempt = asyncio.ensure_future(work(progress))
    try:
        await asyncio.wait((attempt, watchdog), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Neither outlives the attempt, also when the attempt itself is cancelled (a stop).
        cut = watchdog.done() and not attempt.done()
        attempt.cancel()
        watchdog.cancel()
        await asyncio.gather(attempt, watchdog, return_exceptions=True)
    if cut:
        raise TransferFailed(watchdog.result())
    return attempt.result()


async def _watch(progress: Progress, limits: AttemptLimits, clock: Clock, start: float) -> str:
    """Return, as a reason, once the attempt passes a limit (it never returns otherwise)."""
    deadline = start + limits.deadline_seconds
    needed = limits.min_bytes_per_second * limits.window_seconds
    window_start, window_bytes = start, 0
    while True:
        window_end = window_start + limits.window_seconds if needed > 0 else deadline
        await clock.sleep(max(min(deadline, window_end) - clock.now(), 0.0))
        now = clock.now()
        if now >= deadline:
            return f"the attempt took longer than its deadline of {limits.deadline_seconds:g} s"
        if now < window_end:
            continue  # woken early (timer resolution): sleep the rest
        moved = progress.bytes - window_bytes
        if moved < needed:
            return (
                f"the transfer moved {moved} bytes in {now - window_start:.3g} s, under the"
                f" minimum of {limits.min_bytes_per_second} bytes per second"
            )
        window_start, window_bytes = now, progress.bytes


# --- Download ---------------------------------------------------------------------------------


async def download(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: UrlPolicy,
    max_bytes: int,
    into: Path,
    progress: Progress | None = None,
) -> Downloaded:
    """Stream `url` to a file and return what was stored.

    `into` is a directory (a fresh file is created inside it) or the path of the file to
    write. The caller removes the file. Raises an ArchiveFailure subclass on any failure (and
    then leaves no file behind). Bytes are counted on `progress` as they arrive."""
    refused = policy.rejects(url)
    if refused is not None:
        raise NotAVideo(f"not fetched: {refused}")
    target = _target_file(into)
    try:
        async with _open_following_same_origin(client, url, policy) as response:
            return await _save(response, target, max_bytes, progress or Progress())
    except ArchiveFailure:
        target.unlink(missing_ok=True)
        raise
    except httpx.TransportError as error:
        target.unlink(missing_ok=True)
        raise TransferFailed(f"download failed: {_describe(error)}") from error
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _target_file(into: Path) -> Path:
    if into.is_dir():
        handle, name = tempfile.mkstemp(prefix="video-", suffix=".part", dir=into)
        os.close(handle)
        return Path(name)
    return into


@contextlib.asynccontextmanager
async def _open_following_same_origin(
    client: httpx.AsyncClient, url: str, policy: UrlPolicy
) -> AsyncIterator[httpx.Response]:
    """The first non-redirect answer, following redirects only within `url`'s origin."""
    origin = httpx.URL(url)
    current = origin
    for _ in range(MAX_REDIRECTS + 1):
        # Identity encoding: videos do not compress, and a compressed answer could inflate far
        # beyond the piece size before the cap sees it.
        request = client.build_request("GET", current, headers={"accept-encoding": "identity"})
        response = await client.send(request, stream=True, follow_redirects=False)
        try:
            if not response.is_redirect:
                _raise_for_download_status(response)
                yield response
                return
            location = response.headers.get("location", "")
            target = current.join(location)
            if not _same_origin(origin, target) or policy.rejects(str(target)) is not None:
                raise NotAVideo(
                    f"download redirected to another origin ({target.scheme}://{target.host}), "
                    "which is not followed"
                )
            current = target
        finally:
            await response.aclose()
    raise TransferFailed(f"download redirected more than {MAX_REDIRECTS} times")


def _same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _raise_for_download_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise SourceGone(f"the video is gone from its URL (HTTP {status})")
    raise TransferFailed(f"download answered HTTP {status}")


async def _save(
    response: httpx.Response, target: Path, max_bytes: int, progress: Progress
) -> Downloaded:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"the video is {int(declared)} bytes, over the cap of {max_bytes}")
    # The declared type only refuses early what says it is something else (a web page, an
    # image); whatever it says, the bytes must show a video signature, and that signature is
    # what Storage is told (a `video/mp4, text/html` must not be stored and served as sent).
    declared_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (declared_type.startswith("video/") or declared_type in _GENERIC_TYPES):
        raise NotAVideo(f"the URL answered {declared_type or 'no content type'}, not a video")
    digest = hashlib.sha256()
    size = 0
    head = b""
    # Checked as soon as the first bytes are in, so a 2 GB web page is not downloaded first.
    content_type: str | None = None
    with target.open("wb") as file:
        # aiter_bytes decodes any Content-Encoding, so the cap counts what is stored; pieces
        # as they arrive, so `progress` sees a trickle as a trickle.
        async for piece in response.aiter_bytes():
            size += len(piece)
            progress.moved(len(piece))
            if size > max_bytes:
                raise TooLarge(f"the video exceeds the cap of {max_bytes} bytes")
            if content_type is None:
                head = (head + piece)[:_SNIFF_BYTES]
                if len(head) == _SNIFF_BYTES:
                    content_type = _sniffed_type(head, declared_type)
            digest.update(piece)
            file.write(piece)
    if content_type is None:
        content_type = _sniffed_type(head, declared_type)
    return Downloaded(path=target, size=size, sha256=digest.hexdigest(), content_type=content_type)


def _sniffed_type(head: bytes, declared_type: str) -> str:
    """The video type the file's first bytes show; NotAVideo if they show none."""
    if head[4:8] == _MP4_SIGNATURE:
        return "video/quicktime" if head[8:12] == _QUICKTIME_BRAND else "video/mp4"
    if head.startswith(_EBML_SIGNATURE):
        return "video/x-matroska" if b"matroska" in head else "video/webm"
    raise NotAVideo(
        f"the URL answered {declared_type or 'no content type'} without a video signature"
        " (MP4 or WebM)"
    )


# Generic binary types a CDN may put on a video: passed on to the signature check.
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})


def _describe(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- Upload -----------------------------------------------------------------------------------


class _Retry(Exception):
    """A failure worth another try inside this attempt; `failure` is raised if none is left."""

    def __init__(self, failure: TransferFailed) -> None:
        super().__init__(failure.reason)
        self.failure = failure


_UploadStep = Callable[[str, str, Downloaded, Progress], Awaitable[None]]


class StorageUploader:
    """Uploads files to Supabase Storage through its REST API with the service role key."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        supabase_url: str,
        service_role_key: str,
        *,
        resumable_threshold: int = DEFAULT_RESUMABLE_THRESHOLD,
        chunk_size: int = TUS_CHUNK_SIZE,
        retries: int = DEFAULT_UPLOAD_RETRIES,
        backoff: Backoff = DEFAULT_UPLOAD_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        if resumable_threshold < 0 or chunk_size <= 0 or retries < 0:
            raise ValueError("resumable_threshold >= 0, chunk_size > 0 and retries >= 0")
        self._client = client
        self._base = supabase_url.rstrip("/") + "/storage/v1"
        self._key = service_role_key
        self._resumable_threshold = resumable_threshold
        self._chunk_size = chunk_size
        self._retries = retries
        self._backoff = backoff
        self._rng = rng or random.Random()

    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._key}", "apikey": self._key}

    async def check_bucket(self, bucket: str) -> None:
        """Raise TransferFailed with a one-line reason unless `bucket` exists and is readable."""
        url = f"{self._base}/bucket/{quote(bucket, safe='')}"
        try:
            response = await self._client.get(url, headers=self._auth())
        except httpx.TransportError as error:
            raise TransferFailed(
                f"Storage unreachable checking bucket {bucket!r}: {_describe(error)}"
            ) from error
        if response.is_success:
            return
        status = _storage_status(response)
        if status == 404:
            raise TransferFailed(f"Storage bucket {bucket!r} does not exist")
        raise _storage_failure(response, f"checking bucket {bucket!r}")

    async def upload(
        self,
        bucket: str,
        object_path: str,
        source: Downloaded,
        progress: Progress | None = None,
    ) -> None:
        """Store `source` at `bucket/object_path`, replacing what is there (idempotent).
        Bytes are counted on `progress` as they are sent."""
        step = self._standard_upload
        if source.size >= self._resumable_threshold and source.size > 0:
            step = self._tus_upload
        await self._with_retries(step, bucket, object_path, source, progress or Progress())

    async def _with_retries(
        self,
        step: _UploadStep,
        bucket: str,
        object_path: str,
        source: Downloaded,
        progress: Progress,
    ) -> None:
        attempt = 0
        while True:
            try:
                await step(bucket, object_path, source, progress)
                return
            except _Retry as retry:
                if attempt >= self._retries:
                    raise retry.failure from None
                await asyncio.sleep(self._backoff.delay(attempt, self._rng))
                attempt += 1

    # Standard upload: one POST with the whole file as the body, streamed from disk.

    async def _standard_upload(
        self, bucket: str, object_path: str, source: Downloaded, progress: Progress
    ) -> None:
        url = f"{self._base}/object/{quote(bucket, safe='')}/{quote(object_path)}"
        headers = self._auth() | {
            "x-upsert": "true",
            "content-type": source.content_type,
            "content-length": str(source.size),
        }
        try:
            response = await self._client.post(
                url, headers=headers, content=_file_pieces(source.path, 0, source.size, progress)
            )
        except httpx.TransportError as error:
            raise _Retry(TransferFailed(f"upload failed: {_describe(error)}")) from error
        if not response.is_success:
            raise _retry_or_fail(response, "uploading")

    # TUS resumable upload: create, then PATCH chunks; after a failure HEAD says where to go on.

    async def _tus_upload(
        self, bucket: str, object_path: str, source: Downloaded, progress: Progress
    ) -> None:
        location = await self._tus_create(bucket, object_path, source)
        offset = 0
        failures = 0
        while offset < source.size:
            try:
                offset = await self._tus_patch(location, source, offset, progress)
                # Bounded are failures in a row: a long upload may meet several blips.
                failures = 0
                continue
            except _Retry as retry:
                if failures >= self._retries:
                    raise retry.failure from None
                await asyncio.sleep(self._backoff.delay(failures, self._rng))
                failures += 1
            try:
                resumed = await self._tus_offset(location)
            except _Retry:
                # Keep the offset we had: if it is wrong the next PATCH answers 409 and we ask
                # again, within the same budget of failures.
                continue
            if resumed is None:
                # The upload URL expired or was lost: start over (the caller's loop retries).
                raise _Retry(TransferFailed("the resumable upload was lost; starting again"))
            offset = resumed

    async def _tus_create(self, bucket: str, object_path: str, source: Downloaded) -> str:
        metadata = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}"
            for key, value in (
                ("bucketName", bucket),
                ("objectName", object_path),
                ("contentType", source.content_type),
            )
        )
        headers = self._auth() | {
            "tus-resumable": TUS_VERSION,
            "upload-length": str(source.size),
            "upload-metadata": metadata,
            "x-upsert": "true",
        }
        url = f"{self._base}/upload/resumable"
        try:
            response = await self._client.post(url, headers=headers)
        except httpx.TransportError as error:
            raise _Retry(TransferFailed(f"upload failed: {_describe(error)}")) from error
        if response.status_code != 201 or "location" not in response.headers:
            if response.is_success:
                raise _Retry(TransferFailed("Storage created no resumable upload (no Location)"))
            raise _retry_or_fail(response, "starting a resumable upload")
        location = httpx.URL(url).join(response.headers["location"])
        if not _same_origin(location, httpx.URL(url)):
            # Every request to it carries the service role key: never to another host, port or
            # scheme (not even https to http on the same host), whatever Storage answered.
            port = f":{location.port}" if location.port is not None else ""
            raise TransferFailed(
                "Storage named a resumable upload URL on another origin"
                f" ({location.scheme}://{location.host}{port}), which is not followed: the"
                " service role key is sent to SUPABASE_URL's origin only"
            )
        return str(location)

    async def _tus_patch(
        self, location: str, source: Downloaded, offset: int, progress: Progress
    ) -> int:
        length = min(self._chunk_size, source.size - offset)
        headers = self._auth() | {
            "tus-resumable": TUS_VERSION,
            "upload-offset": str(offset),
            "content-type": "application/offset+octet-stream",
            "content-length": str(length),
        }
        try:
            response = await self._client.patch(
                location,
                headers=headers,
                content=_file_pieces(source.path, offset, length, progress),
            )
        except httpx.TransportError as error:
            raise _Retry(TransferFailed(f"upload interrupted: {_describe(error)}")) from error
        if response.status_code == 409:
            # Offsets disagree (a chunk we thought lost did land): ask where to go on.
            raise _Retry(TransferFailed("Storage reported another upload offset"))
        if not response.is_success:
            raise _retry_or_fail(response, "uploading a chunk")
        reported = response.headers.get("upload-offset", "")
        if not reported.isdigit() or not offset < int(reported) <= source.size:
            raise _Retry(TransferFailed(f"Storage answered an unusable offset {reported!r}"))
        return int(reported)

    async def _tus_offset(self, location: str) -> int | None:
        """Where the upload stands on the server, None if it no longer exists."""
        headers = self._auth() | {"tus-resumable": TUS_VERSION}
        try:
            response = await self._client.head(location, headers=headers)
        except httpx.TransportError as error:
            raise _Retry(TransferFailed(f"resuming failed: {_describe(error)}")) from error
        if response.status_code in (404, 410):
            return None
        reported = response.headers.get("upload-offset", "")
        if response.is_success and reported.isdigit():
            return int(reported)
        raise _retry_or_fail(response, "asking a resumable upload's offset")


async def _file_pieces(
    path: Path, offset: int, length: int, progress: Progress
) -> AsyncIterator[bytes]:
    """`length` bytes of the file from `offset`, in pieces: never the whole file in memory.
    Each piece is counted on `progress` as it is handed to the connection."""
    with path.open("rb") as file:
        file.seek(offset)
        left = length
        while left > 0:
            piece = file.read(min(_PIECE, left))
            if not piece:
                raise TransferFailed(f"the downloaded file {path.name} is shorter than recorded")
            left -= len(piece)
            progress.moved(len(piece))
            yield piece


def _storage_status(response: httpx.Response) -> int:
    """The status Storage meant: its JSON errors carry one in `statusCode` (a string), and
    some are sent as HTTP 400 with the real code only there (e.g. "409" Duplicate)."""
    try:
        body = response.json()
    except ValueError:
        return response.status_code
    code = body.get("statusCode") if isinstance(body, dict) else None
    if isinstance(code, int | str) and str(code).isdigit():
        return int(code)
    return response.status_code


def _storage_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("error", "message") if isinstance(body.get(k), str)]
        return ": ".join(dict.fromkeys(parts))[:200]
    return ""


def _storage_failure(response: httpx.Response, doing: str) -> ArchiveFailure:
    """The failure a non-2xx Storage answer stands for."""
    status = _storage_status(response)
    detail = _storage_message(response)
    suffix = f" ({detail})" if detail else ""
    if status == 413 or response.status_code == 413:
        return TooLarge(f"Storage refused the object's size{suffix}")
    if status in (401, 403) or response.status_code in (401, 403):
        # Our key, not the video: never a reason to give the clip's archive up.
        return TransferFailed(
            f"Storage rejected the service role key while {doing} "
            f"(HTTP {response.status_code}){suffix}"
        )
    if status == 400 and not _is_duplicate(response):
        # A 400 meant as a 400 (Storage sends others, 404 or 409, under HTTP 400 too, with
        # the real code in the body): the object key or the request is unusable, and the same
        # video sent again gets the same answer, so it is not downloaded again to find out.
        return StorageRefused(f"Storage refused the object while {doing} (HTTP 400){suffix}")
    return TransferFailed(f"Storage answered HTTP {response.status_code} while {doing}{suffix}")


def _is_duplicate(response: httpx.Response) -> bool:
    """Storage's "the resource already exists" (statusCode "409", error "Duplicate")."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("error") == "Duplicate"


def _retry_or_fail(response: httpx.Response, doing: str) -> Exception:
    """Raise-able: 5xx, 429 and 409 (another writer on the path) are retried in this attempt;
    anything else ends it at once."""
    failure = _storage_failure(response, doing)
    status = _storage_status(response)
    if isinstance(failure, TransferFailed) and (
        response.status_code >= 500 or status >= 500 or status in (408, 409, 429)
    ):
        return _Retry(failure)
    return failure
