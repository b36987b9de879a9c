"""The pieces an archiving test needs: the simulator serving real video bytes on its own origin,
the Storage stand-in, the service's settings for archiving, and the checks on the outcome.

On the Supabase transport, SUPABASE_URL must answer both PostgREST and Storage (one project
URL), so `running_supabase_with_storage` serves the PostgREST stand-in's routes and forwards
`/storage/...` to the Storage stand-in, streaming both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator
from reconciler.local.storage import StorageStandIn
from tests.plugin import ENGINE_ENV
from tests.standins.postgrest import PostgrestStandIn

BUCKET = "videos"
# Hop-by-hop headers a forwarder must not pass on (RFC 9110 §7.6.1), and the ones it sets.
_NOT_FORWARDED = {"host", "connection", "keep-alive", "transfer-encoding", "upgrade", "te"}

ARCHIVE_ENV = {
    "RECONCILER_ARCHIVE": "supabase",
    "RECONCILER_ARCHIVE_BUCKET": BUCKET,
    "RECONCILER_ARCHIVE_RETRY_BASE_SECONDS": "0.05",
    "RECONCILER_ARCHIVE_RETRY_CAP_SECONDS": "0.2",
    # Tests hold uploads (UploadGate) and pace videos for as long as they need: no minimum
    # throughput cuts those attempts on a slow machine. The tests of that limit set their own.
    "RECONCILER_ARCHIVE_MIN_BYTES_PER_SECOND": "0",
}


def serve_videos(simulator: RunwareSimulator, size_bytes: int = 256 * 1024) -> None:
    """Jobs created from now on answer URLs on the simulator's origin, with real bytes."""
    simulator.config.videos.on_own_origin = True
    simulator.config.videos.size_bytes = size_bytes


def archive_env(
    service_env: dict[str, str], simulator: RunwareSimulator, supabase_url: str, key: str
) -> dict[str, str]:
    """Settings for a service with the engine and archiving on, videos allowed from the
    simulator."""
    return (
        service_env
        | ENGINE_ENV
        | ARCHIVE_ENV
        | {
            "SUPABASE_URL": supabase_url,
            "SUPABASE_SERVICE_ROLE_KEY": key,
            "RECONCILER_ALLOWED_URL_HOSTS": simulator.base_url,
        }
    )


class UploadGate:
    """Holds upload requests (POST, PUT, PATCH) at the forwarder while closed: an upload is
    then in flight for as long as a test needs (to kill the process making it)."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self.held = 0

    def close(self) -> None:
        self._open.clear()

    def open(self) -> None:
        self._open.set()

    async def passage(self, method: str) -> None:
        if method not in ("POST", "PUT", "PATCH") or self._open.is_set():
            return
        self.held += 1
        try:
            await self._open.wait()
        finally:
            self.held -= 1


@contextlib.asynccontextmanager
async def running_supabase_with_storage(
    database_url: str | None, storage: StorageStandIn, gate: UploadGate | None = None
) -> AsyncIterator[str]:
    """One URL serving Storage (`/storage/v1/...`, forwarded) and, given a database, the
    PostgREST stand-in (`/rest/v1/rpc/...`)."""
    rest_app = PostgrestStandIn(database_url).app() if database_url is not None else None
    client = httpx.AsyncClient(base_url=storage.url, timeout=120)

    async def forward(request: Request) -> Response:
        if gate is not None:
            await gate.passage(request.method)
        headers = [
            (name, value)
            for name, value in request.headers.raw
            if name.decode().lower() not in _NOT_FORWARDED
        ]
        outgoing = client.build_request(
            request.method,
            request.url.path,
            params=request.url.query,
            headers=headers,
            content=request.stream(),
        )
        try:
            answer = await client.send(outgoing, stream=True)
        except (httpx.HTTPError, ClientDisconnect):
            # The uploader went away (killed) while its request was held or forwarded.
            return Response(status_code=502)
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers=kept,
            background=BackgroundTask(answer.aclose),
        )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if rest_app is None:
            yield
            return
        async with rest_app.router.lifespan_context(rest_app):
            yield

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = Starlette(
        routes=[
            *(rest_app.routes if rest_app is not None else []),
            Route("/storage/{rest:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )
    try:
        async with serve(app) as url:
            yield url
    finally:
        await client.aclose()


async def source_sha256(url: str) -> tuple[str, int]:
    """The video as the simulator serves it now: its sha256 and size."""
    digest = hashlib.sha256()
    size = 0
    async with httpx.AsyncClient(timeout=60) as client, client.stream("GET", url) as response:
        response.raise_for_status()
        async for piece in response.aiter_bytes():
            digest.update(piece)
            size += len(piece)
    return digest.hexdigest(), size


async def archive_tasks(db: asyncpg.Connection) -> dict[tuple[UUID, str], dict[str, Any]]:
    rows = await db.fetch("select * from reconciler.archive_tasks")
    return {(r["project_id"], r["job_id"]): dict(r) for r in rows}


async def clip_values(db: asyncpg.Connection) -> dict[tuple[UUID, str], Any]:
    rows = await db.fetch(
        "select p.id, e.key, e.value from public.projects p, jsonb_each(p.clips) e"
    )
    return {(r["id"], r["key"]): r["value"] for r in rows}


async def assert_archived_byte_for_byte(
    db: asyncpg.Connection, storage: StorageStandIn, supabase_url: str
) -> int:
    """Every archive task ended 'archived'; its clip holds the object's public URL; the
    object's bytes hash to what was downloaded, which is what the source serves. Returns
    how many were checked."""
    tasks = await archive_tasks(db)
    clips = await clip_values(db)
    prefix = f"{supabase_url}/storage/v1/object/public/{BUCKET}/"
    for (project, job), task in tasks.items():
        assert task["state"] == "archived", task
        path = f"{project}/{job}.mp4"
        assert task["object_path"] == path
        assert clips[(project, job)] == prefix + path
        stored = storage.object_file(BUCKET, path)
        assert stored is not None, path
        assert storage.object_sha256(BUCKET, path) == task["sha256"]
        assert stored.stat().st_size == task["size_bytes"]
        assert (task["sha256"], task["size_bytes"]) == await source_sha256(task["source_url"])
    return len(tasks)
