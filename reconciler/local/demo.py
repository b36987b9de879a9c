"""`reconciler demo`: the whole flow on this machine, no accounts.

A throw-away PostgreSQL with Supabase's baseline and the migration, the Runware simulator, and
the service on loopback. The demo plays the app: it submits video jobs to the simulator, stores
them as pending clips, then drives the check endpoint until every clip has settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from rich.console import Console
from rich.text import Text

from reconciler.app import create_app
from reconciler.cli_output import render_check
from reconciler.config import load_settings
from reconciler.local.localpg import LocalPostgres
from reconciler.local.serving import serve
from reconciler.local.simulator import (
    FAILING_MODEL,
    JobDefaults,
    RunwareSimulator,
    SimulatorConfig,
    VideoFiles,
    WebhookFaults,
)
from reconciler.local.storage import StorageStandIn
from reconciler.migrations import apply_baseline, apply_migrations
from reconciler.operator.terminal import terminal_text
from reconciler.redaction import mask_url_password
from reconciler.runware.client import RunwareClient

SETTLE_DEADLINE_SECONDS = 90.0
ARCHIVE_BUCKET = "videos"
WATCH_INTERVAL_SECONDS = 0.2


@dataclass(frozen=True)
class DemoStack:
    database_url: str
    simulator: RunwareSimulator
    service_url: str
    token: str
    webhook_secret: str
    # With `--archive`: the Storage stand-in finished videos are copied into.
    storage: StorageStandIn | None = None

    @property
    def webhook_url(self) -> str:
        return f"{self.service_url}/webhooks/runware?token={self.webhook_secret}"


def _service_env(database_url: str, simulator: RunwareSimulator) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "RECONCILER_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "RUNWARE_WEBHOOK_SECRET": secrets.token_urlsafe(32),
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
        # Demo time: videos take seconds, not minutes, so poll sooner and more often.
        "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "3",
        "RECONCILER_POLL_INTERVAL_SECONDS": "0.5",
        "RECONCILER_BACKOFF_BASE_SECONDS": "1",
        "RECONCILER_BACKOFF_CAP_SECONDS": "2",
        "RECONCILER_SWEEP_SPREAD_SECONDS": "0",
        "RECONCILER_LOG_LEVEL": "warning",
    }


async def _start_postgres(postgres: LocalPostgres) -> None:
    """`postgres.start()` in a thread, finished even if we are cancelled meanwhile.

    A start cannot be interrupted half-way. Cancelled, this waits for the start to end before
    re-raising, so that the caller's `stop()` comes after it: a stop that won the race for
    the cluster's lock would find nothing to stop, and the start would then leave a cluster
    that nobody owns."""
    starting = asyncio.ensure_future(asyncio.to_thread(postgres.start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        await asyncio.wait([starting])
        if not starting.cancelled():
            starting.exception()  # retrieved: the cancellation is what goes on
        raise


def _archive_env(simulator: RunwareSimulator, storage: StorageStandIn, key: str) -> dict[str, str]:
    """Archiving into the Storage stand-in; videos are real bytes on the simulator's origin."""
    return {
        "RECONCILER_ARCHIVE": "supabase",
        "RECONCILER_ARCHIVE_BUCKET": ARCHIVE_BUCKET,
        "SUPABASE_URL": storage.url,
        "SUPABASE_SERVICE_ROLE_KEY": key,
        "RECONCILER_ALLOWED_URL_HOSTS": simulator.base_url,
    }


@contextlib.asynccontextmanager
async def _maybe_storage(key: str | None) -> AsyncIterator[StorageStandIn | None]:
    if key is None:
        yield None
        return
    async with StorageStandIn(key, buckets=[ARCHIVE_BUCKET]) as storage:
        yield storage


@contextlib.asynccontextmanager
async def demo_stack(console: Console, *, archive: bool = False) -> AsyncIterator[DemoStack]:
    """PostgreSQL, simulator and service, torn down in reverse order on exit."""
    # Ours before it starts: cancelled during the start (Ctrl-C), the `finally` stops it.
    postgres = LocalPostgres()
    try:
        with console.status("Starting a throw-away PostgreSQL…"):
            await _start_postgres(postgres)
        database_url = postgres.dsn()
        await apply_baseline(database_url)
        applied = await apply_migrations(database_url)
        # The throw-away cluster trusts loopback (no password today), but no URL is printed
        # unmasked, here as anywhere.
        shown = mask_url_password(database_url)
        console.print(f"[green]✓[/] PostgreSQL on {shown} — migrated: {', '.join(applied)}")
        config = SimulatorConfig(
            seed=2026,
            jobs=JobDefaults(seconds=2.0, seconds_jitter=4.0),
            webhooks=WebhookFaults(),
            videos=VideoFiles(on_own_origin=archive, size_bytes=1024 * 1024),
        )
        storage_key = secrets.token_urlsafe(32) if archive else None
        async with RunwareSimulator(config) as simulator, _maybe_storage(storage_key) as storage:
            console.print(f"[green]✓[/] Runware simulator on {simulator.url}")
            env = _service_env(database_url, simulator)
            if storage is not None and storage_key is not None:
                env |= _archive_env(simulator, storage, storage_key)
                console.print(f"[green]✓[/] Storage stand-in on {storage.url}, archiving on")
            async with serve(create_app(load_settings(env))) as service_url:
                console.print(
                    f"[green]✓[/] Service on {service_url} (webhooks, LISTEN/NOTIFY, poller)"
                )
                yield DemoStack(
                    database_url,
                    simulator,
                    service_url,
                    env["RECONCILER_ADMIN_TOKEN"],
                    env["RUNWARE_WEBHOOK_SECRET"],
                    storage,
                )
    finally:
        await asyncio.to_thread(postgres.stop)


async def create_demo_project(stack: DemoStack, conn: asyncpg.Connection, clips: int) -> UUID:
    """What the app does: submit jobs with the webhook URL, store each job id as pending."""
    job_ids = [str(uuid4()) for _ in range(clips)]
    async with RunwareClient(
        stack.simulator.url, stack.simulator.config.api_key, max_retries=2
    ) as runware:
        for index, job_id in enumerate(job_ids):
            # Every third job's webhook is lost, as in a Runware outage: polling must find it.
            if index % 3 == 1:
                stack.simulator.config.webhooks.drop_tasks.add(job_id)
            # The last job is submitted with a model the simulator always fails.
            model = FAILING_MODEL if index == clips - 1 else "klingai:5@3"
            await runware.submit_video(job_id, webhook_url=stack.webhook_url, model=model)
    project_id = uuid4()
    await conn.execute(
        "insert into public.projects (id, name, clips) values ($1, 'demo', $2::jsonb)",
        project_id,
        json.dumps(dict.fromkeys(job_ids, "pending")),
    )
    return project_id


async def watch_until_settled(
    stack: DemoStack, conn: asyncpg.Connection, project_id: UUID, console: Console
) -> tuple[dict[str, str], dict[str, str], float]:
    """Print each clip as it settles, and how: by webhook, or by polling (webhook dropped)."""
    started = time.monotonic()
    seen: dict[str, str] = {}
    how: dict[str, str] = {}
    while True:
        clips: dict[str, str] = json.loads(
            await conn.fetchval("select clips::text from public.projects where id = $1", project_id)
        )
        elapsed = time.monotonic() - started
        for job_id, value in clips.items():
            if value != "pending" and job_id not in seen:
                seen[job_id] = value
                dropped = job_id in stack.simulator.counters.webhook_dropped_tasks
                how[job_id] = "polling (webhook dropped)" if dropped else "webhook"
                outcome = "[red]failed   [/]" if value == "failed" else "[green]completed[/]"
                pending = sum(1 for v in clips.values() if v == "pending")
                # The key is read back from projects.clips: the database's text, not markup.
                console.print(
                    Text.assemble(
                        f"  {elapsed:5.1f}s  ",
                        terminal_text(job_id[:8]),
                        "…  ",
                        Text.from_markup(outcome),
                        f" via {how[job_id]:<26} ({pending} pending)",
                    )
                )
        if all(v != "pending" for v in clips.values()) or elapsed > SETTLE_DEADLINE_SECONDS:
            return clips, how, elapsed
        await asyncio.sleep(WATCH_INTERVAL_SECONDS)


async def check_through_endpoint(stack: DemoStack, project_id: UUID) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as client:
        response = await client.post(
            "/check-clips-status",
            json={"project_id": str(project_id)},
            headers={"Authorization": f"Bearer {stack.token}"},
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def watch_until_archived(
    stack: DemoStack, conn: asyncpg.Connection, project_id: UUID, console: Console
) -> int:
    """With archiving on: wait until every completed clip holds its Storage URL."""
    assert stack.storage is not None
    prefix = stack.storage.public_url(ARCHIVE_BUCKET, "")
    started = time.monotonic()
    while True:
        clips: dict[str, str] = json.loads(
            await conn.fetchval("select clips::text from public.projects where id = $1", project_id)
        )
        done = [v for v in clips.values() if v != "failed"]
        archived = sum(1 for v in done if v.startswith(prefix))
        if archived == len(done) or time.monotonic() - started > SETTLE_DEADLINE_SECONDS:
            console.print(
                f"[green]✓[/] {archived} of {len(done)} completed clips now point at Storage"
                f" ({prefix}…): Runware may delete its copies."
            )
            return len(done) - archived
        await asyncio.sleep(WATCH_INTERVAL_SECONDS)


async def run_demo(clips: int = 8, *, archive: bool = False) -> int:
    console = Console()
    if clips < 2:
        console.print("[red]--clips must be at least 2 (one of them is made to fail)[/]")
        return 2
    not_archived = 0
    async with demo_stack(console, archive=archive) as stack:
        conn = await asyncpg.connect(stack.database_url)
        try:
            project_id = await create_demo_project(stack, conn, clips)
            console.print(
                f"[green]✓[/] The app submitted {clips} video jobs to Runware (webhook URL set)"
                f" and stored them as pending clips of project {project_id}. The simulator"
                " will drop every third job's webhook.\n"
                "Watching projects.clips — nobody calls anything:"
            )
            final, how, elapsed = await watch_until_settled(stack, conn, project_id, console)
            if stack.storage is not None:
                not_archived = await watch_until_archived(stack, conn, project_id, console)
        finally:
            await conn.close()
        checked = await check_through_endpoint(stack, project_id)
        console.print("\nThe seed-compatible check endpoint agrees (POST /check-clips-status):")
        render_check(checked, console)
        counters = stack.simulator.counters
        by_webhook = sum(1 for h in how.values() if h == "webhook")
        console.print(
            f"Settled in {elapsed:.1f} s: {by_webhook} by webhook, {len(how) - by_webhook} by"
            f" polling after their webhook was dropped. Runware: "
            f"{counters.requests_by_task_type['getResponse']} getResponse requests for"
            f" {counters.get_response_tasks} task checks, {counters.webhook_delivered} webhooks"
            f" delivered, {counters.webhook_dropped} dropped."
        )
    pending = sum(1 for v in final.values() if v == "pending")
    if not_archived:
        console.print(f"[red]✗ {not_archived} completed clips not archived after the deadline[/]")
        return 1
    if pending:
        console.print(f"[red]✗ {pending} clips still pending after the deadline[/]")
        return 1
    completed = sum(1 for v in final.values() if v != "failed")
    console.print(
        f"[green]✓ Every clip settled:[/] {completed} completed, {len(final) - completed} failed."
    )
    return 0
