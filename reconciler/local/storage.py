"""A local stand-in for Supabase Storage: the REST routes the archiver uses, with faults.

Speaks (docs/supabase-storage.md): `GET /storage/v1/bucket/{id}`; standard upload
`POST /storage/v1/object/{bucket}/{path}` with upsert semantics; TUS 1.0.0 resumable uploads
(`POST /storage/v1/upload/resumable`, then `HEAD`/`PATCH` on the returned Location); and public
reads `GET /storage/v1/object/public/{bucket}/{path}`. Requests carry the service role key as
`apikey` and as a Bearer token, as real Storage wants; errors have Storage's body shape
(`{"statusCode": "409", "error": …, "message": …}`, often sent as HTTP 400).

Objects live on disk in a temporary directory and are written as they arrive, so a 500 MB
upload costs no memory. Faults (`StorageFaults`, read on every request): answer 5xx (or any
status, e.g. a 400 for a key Storage will not take) the next N times, 413 above a size, drop
the connection part-way through an upload body, name a resumable upload's Location on another
origin.

    async with StorageStandIn("service-key", buckets=["videos"]) as storage:
        uploader = StorageUploader(client, storage.url, "service-key")
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import TracebackType

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from reconciler.local.serving import serve

TUS_VERSION = "1.0.0"
_UPLOADS = "/storage/v1/upload/resumable"


@dataclass
class StorageFaults:
    """Injected failures. Counts are consumed as they fire."""

    # The next `fail_next` upload requests (standard POST, TUS create, PATCH) get `fail_status`,
    # in Storage's error shape (`statusCode` the same status, `error` its phrase).
    fail_next: int = 0
    fail_status: int = 503
    # A TUS create answers a Location on this origin (`scheme://host:port`) instead of its own.
    tus_location_origin: str | None = None
    # Objects larger than this are refused with 413 (Storage's file size limit).
    max_object_bytes: int | None = None
    # The next upload request whose body reaches this many bytes has its connection dropped
    # there (once; the knob then resets to None). Bytes a PATCH received before the drop are
    # kept, as a TUS server keeps them.
    drop_upload_after_bytes: int | None = None


@dataclass
class StorageCounters:
    requests: int = 0
    rejected_auth: int = 0
    standard_uploads: int = 0
    tus_creates: int = 0
    tus_heads: int = 0
    tus_patches: int = 0
    # Body bytes received by upload requests (standard and PATCH), including dropped ones.
    upload_bytes_received: int = 0
    faults_injected: int = 0


@dataclass
class _Upload:
    bucket: str
    name: str
    length: int
    content_type: str
    part: Path
    offset: int = 0


@dataclass
class _Object:
    file: Path
    content_type: str


@dataclass
class _State:
    root: Path
    key: str
    buckets: set[str]
    faults: StorageFaults = field(default_factory=StorageFaults)
    counters: StorageCounters = field(default_factory=StorageCounters)
    objects: dict[tuple[str, str], _Object] = field(default_factory=dict)
    uploads: dict[str, _Upload] = field(default_factory=dict)

    def object_file(self, bucket: str, name: str) -> Path:
        # Named by a digest: an object path never becomes a file-system path.
        digest = hashlib.sha256(f"{bucket}\0{name}".encode()).hexdigest()
        return self.root / "objects" / digest


def _error(http_status: int, code: int, error: str, message: str) -> Response:
    """Storage's error body: the intended status as a string, often under HTTP 400."""
    body = {"statusCode": str(code), "error": error, "message": message}
    return JSONResponse(body, status_code=http_status)


def _bucket_missing() -> Response:
    return _error(400, 404, "Bucket not found", "Bucket not found")


def _too_large() -> Response:
    return _error(413, 413, "Payload too large", "The object exceeded the maximum allowed size")


class _DropConnection(Response):
    """Starts an answer and abandons it: uvicorn then closes the connection mid-request."""

    def __init__(self) -> None:
        self.status_code = 500
        self.background = None
        self.init_headers({"content-length": "1"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 500, "headers": self.raw_headers})


def _auth_problem(state: _State, request: Request) -> Response | None:
    """Storage's answers for a missing or wrong key (the gateway checks `apikey` first)."""
    apikey = request.headers.get("apikey")
    if apikey is None:
        return JSONResponse({"message": "No API key found in request"}, status_code=401)
    if not hmac.compare_digest(apikey.encode(), state.key.encode()):
        return JSONResponse({"message": "Invalid API key"}, status_code=401)
    header = request.headers.get("authorization")
    if header is None:
        return _error(
            400, 403, "Unauthorized", "headers must have required property 'authorization'"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        token.strip().encode(), state.key.encode()
    ):
        return _error(400, 403, "Unauthorized", "invalid signature")
    return None


def _checked(state: _State, request: Request) -> Response | None:
    state.counters.requests += 1
    problem = _auth_problem(state, request)
    if problem is not None:
        state.counters.rejected_auth += 1
    return problem


def _injected_failure(state: _State) -> Response | None:
    if state.faults.fail_next <= 0:
        return None
    state.faults.fail_next -= 1
    state.counters.faults_injected += 1
    status = state.faults.fail_status
    return _error(status, status, HTTPStatus(status).phrase, "simulated failure")


def _declared_length(request: Request) -> int | None:
    text = request.headers.get("content-length", "")
    return int(text) if text.isdigit() else None


async def _receive_into(
    state: _State, request: Request, file: Path, *, append: bool, limit: int | None
) -> tuple[int, Response | None]:
    """Write the request body to `file` as it arrives: (bytes written, answer if cut short)."""
    written = 0
    with file.open("ab" if append else "wb") as out:
        async for piece in request.stream():
            drop_at = state.faults.drop_upload_after_bytes
            if drop_at is not None and written + len(piece) >= drop_at:
                kept = piece[: max(0, drop_at - written)]
                out.write(kept)
                written += len(kept)
                state.counters.upload_bytes_received += len(kept)
                state.faults.drop_upload_after_bytes = None
                state.counters.faults_injected += 1
                return written, _DropConnection()
            written += len(piece)
            state.counters.upload_bytes_received += len(piece)
            if limit is not None and written > limit:
                return written, _too_large()
            out.write(piece)
    return written, None


def _create_app(state: _State) -> Starlette:
    async def get_bucket(request: Request) -> Response:
        if (problem := _checked(state, request)) is not None:
            return problem
        bucket = request.path_params["bucket"]
        if bucket not in state.buckets:
            return _bucket_missing()
        return JSONResponse(
            {
                "id": bucket,
                "name": bucket,
                "owner": "",
                "public": True,
                "file_size_limit": state.faults.max_object_bytes,
                "allowed_mime_types": None,
            }
        )

    async def standard_upload(request: Request) -> Response:
        if (problem := _checked(state, request)) is not None:
            return problem
        state.counters.standard_uploads += 1
        bucket, name = request.path_params["bucket"], request.path_params["name"]
        if bucket not in state.buckets:
            return _bucket_missing()
        if (failure := _injected_failure(state)) is not None:
            return failure
        limit = state.faults.max_object_bytes
        declared = _declared_length(request)
        if limit is not None and declared is not None and declared > limit:
            return _too_large()
        upsert = request.headers.get("x-upsert", "").lower() == "true"
        if (bucket, name) in state.objects and not upsert:
            return _error(400, 409, "Duplicate", "The resource already exists")
        target = state.object_file(bucket, name)
        part = target.with_name(f"{target.name}.{uuid.uuid4().hex}.part")
        try:
            _, cut = await _receive_into(state, request, part, append=False, limit=limit)
            if cut is not None:
                return cut
            # Whole or nothing: the object appears only once every byte has arrived.
            part.replace(target)
        finally:
            part.unlink(missing_ok=True)
        content_type = request.headers.get("content-type", "application/octet-stream")
        state.objects[(bucket, name)] = _Object(target, content_type)
        return JSONResponse({"Key": f"{bucket}/{name}", "Id": str(uuid.uuid4())})

    async def tus_create(request: Request) -> Response:
        if (problem := _checked(state, request)) is not None:
            return problem
        state.counters.tus_creates += 1
        if request.headers.get("tus-resumable") != TUS_VERSION:
            return Response("Unsupported TUS version", status_code=412)
        length_text = request.headers.get("upload-length", "")
        metadata = _tus_metadata(request.headers.get("upload-metadata", ""))
        if not length_text.isdigit() or metadata is None:
            return _error(400, 400, "Bad Request", "Upload-Length and Upload-Metadata required")
        bucket, name = metadata.get("bucketName"), metadata.get("objectName")
        if not bucket or not name:
            return _error(400, 400, "Bad Request", "bucketName and objectName are required")
        if bucket not in state.buckets:
            return _bucket_missing()
        if (failure := _injected_failure(state)) is not None:
            return failure
        length = int(length_text)
        limit = state.faults.max_object_bytes
        if limit is not None and length > limit:
            return _too_large()
        upsert = request.headers.get("x-upsert", "").lower() == "true"
        if (bucket, name) in state.objects and not upsert:
            return _error(409, 409, "Duplicate", "The resource already exists")
        upload_id = uuid.uuid4().hex
        part = state.root / "uploads" / upload_id
        part.touch()
        content_type = metadata.get("contentType") or "application/octet-stream"
        state.uploads[upload_id] = _Upload(bucket, name, length, content_type, part)
        if length == 0:
            _finish(state, upload_id)
        origin = state.faults.tus_location_origin or f"{request.base_url}".rstrip("/")
        location = origin + f"{_UPLOADS}/{upload_id}"
        return Response(
            status_code=201, headers={"location": location, "tus-resumable": TUS_VERSION}
        )

    async def tus_head(request: Request) -> Response:
        if (problem := _checked(state, request)) is not None:
            return problem
        state.counters.tus_heads += 1
        upload = state.uploads.get(request.path_params["upload_id"])
        if upload is None:
            return Response(status_code=404, headers={"tus-resumable": TUS_VERSION})
        return Response(
            status_code=200,
            headers={
                "upload-offset": str(upload.offset),
                "upload-length": str(upload.length),
                "tus-resumable": TUS_VERSION,
                "cache-control": "no-store",
            },
        )

    async def tus_patch(request: Request) -> Response:
        if (problem := _checked(state, request)) is not None:
            return problem
        state.counters.tus_patches += 1
        upload_id = request.path_params["upload_id"]
        upload = state.uploads.get(upload_id)
        if upload is None:
            return Response(status_code=404, headers={"tus-resumable": TUS_VERSION})
        if request.headers.get("tus-resumable") != TUS_VERSION:
            return Response("Unsupported TUS version", status_code=412)
        if request.headers.get("content-type") != "application/offset+octet-stream":
            return Response("Content-Type must be application/offset+octet-stream", 415)
        offset_text = request.headers.get("upload-offset", "")
        if not offset_text.isdigit() or int(offset_text) != upload.offset:
            return Response("Upload-Offset does not match", status_code=409)
        if (failure := _injected_failure(state)) is not None:
            return failure
        room = upload.length - upload.offset
        declared = _declared_length(request)
        if declared is not None and declared > room:
            return Response("The chunk goes past Upload-Length", status_code=400)
        written, cut = await _receive_into(state, request, upload.part, append=True, limit=None)
        upload.offset += min(written, room)
        if cut is not None:
            return cut
        if upload.offset >= upload.length:
            _finish(state, upload_id)
        return Response(
            status_code=204,
            headers={"upload-offset": str(upload.offset), "tus-resumable": TUS_VERSION},
        )

    async def public_object(request: Request) -> Response:
        stored = state.objects.get((request.path_params["bucket"], request.path_params["name"]))
        if stored is None:
            return _error(400, 404, "not_found", "Object not found")
        return FileResponse(stored.file, media_type=stored.content_type)

    return Starlette(
        routes=[
            Route("/storage/v1/bucket/{bucket}", get_bucket, methods=["GET"]),
            Route("/storage/v1/object/public/{bucket}/{name:path}", public_object, methods=["GET"]),
            Route("/storage/v1/object/{bucket}/{name:path}", standard_upload, methods=["POST"]),
            Route(_UPLOADS, tus_create, methods=["POST"]),
            Route(_UPLOADS + "/{upload_id}", tus_head, methods=["HEAD"]),
            Route(_UPLOADS + "/{upload_id}", tus_patch, methods=["PATCH"]),
        ]
    )


def _finish(state: _State, upload_id: str) -> None:
    upload = state.uploads.pop(upload_id)
    target = state.object_file(upload.bucket, upload.name)
    upload.part.replace(target)
    state.objects[(upload.bucket, upload.name)] = _Object(target, upload.content_type)


def _tus_metadata(header: str) -> dict[str, str] | None:
    """`key base64,key base64` → {key: value}; None when malformed."""
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in header.split(","))):
        key, _, encoded = item.partition(" ")
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    return pairs


class StorageStandIn:
    """Serves the stand-in on a loopback port; `url` plays the part of `SUPABASE_URL`."""

    def __init__(
        self, service_role_key: str, *, buckets: Iterable[str] = ("videos",), port: int = 0
    ) -> None:
        self._key = service_role_key
        self._buckets = set(buckets)
        self._port = port
        self._state: _State | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._url: str | None = None

    async def __aenter__(self) -> StorageStandIn:
        stack = contextlib.AsyncExitStack()
        try:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storage-")))
            (root / "objects").mkdir()
            (root / "uploads").mkdir()
            self._state = _State(root=root, key=self._key, buckets=self._buckets)
            self._url = await stack.enter_async_context(
                serve(_create_app(self._state), port=self._port)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._url = None
        if stack is not None:
            await stack.aclose()

    def _running(self) -> _State:
        if self._state is None:
            raise RuntimeError("the storage stand-in is not running; use `async with`")
        return self._state

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the storage stand-in is not running; use `async with`")
        return self._url

    @property
    def faults(self) -> StorageFaults:
        return self._running().faults

    @property
    def counters(self) -> StorageCounters:
        return self._running().counters

    def add_bucket(self, bucket: str) -> None:
        self._running().buckets.add(bucket)

    def public_url(self, bucket: str, name: str) -> str:
        return f"{self.url}/storage/v1/object/public/{bucket}/{name}"

    def object_file(self, bucket: str, name: str) -> Path | None:
        """Where the stored object's bytes are, None if there is no such object."""
        stored = self._running().objects.get((bucket, name))
        return None if stored is None else stored.file

    def object_sha256(self, bucket: str, name: str) -> str | None:
        """The stored object's SHA-256, read in pieces (objects may be hundreds of MB); None if
        there is no such object."""
        file = self.object_file(bucket, name)
        if file is None:
            return None
        digest = hashlib.sha256()
        with file.open("rb") as stored:
            while piece := stored.read(1 << 20):
                digest.update(piece)
        return digest.hexdigest()

    def content_type(self, bucket: str, name: str) -> str | None:
        stored = self._running().objects.get((bucket, name))
        return None if stored is None else stored.content_type

    def open_uploads(self) -> int:
        return len(self._running().uploads)
