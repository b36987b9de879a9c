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

from reconciler.app import create_app
from reconciler.cli_output import render_check
from reconciler.config import load_settings
from reconciler.localpg import LocalPostgres
from reconciler.migrations import apply_baseline, apply_migrations
from reconciler.runware import RunwareClient
from reconciler.serving import serve
from reconciler.simulator import FAILING_MODEL, JobDefaults, RunwareSimulator, SimulatorConfig

SETTLE_DEADLINE_SECONDS = 60.0
CHECK_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class DemoStack:
    database_url: str
    simulator: RunwareSimulator
    service_url: str
    token: str


@contextlib.asynccontextmanager
async def demo_stack(console: Console) -> AsyncIterator[DemoStack]:
    """PostgreSQL, simulator and service, torn down in reverse order on exit."""
    with console.status("Starting a throw-away PostgreSQL…"):
        postgres = await asyncio.to_thread(LocalPostgres().start)
    try:
        database_url = postgres.dsn()
        await apply_baseline(database_url)
        applied = await apply_migrations(database_url)
        console.print(f"[green]✓[/] PostgreSQL on {database_url} — migrated: {', '.join(applied)}")
        config = SimulatorConfig(seed=2026, jobs=JobDefaults(seconds=1.5, seconds_jitter=4.0))
        async with RunwareSimulator(config) as simulator:
            console.print(f"[green]✓[/] Runware simulator on {simulator.url}")
            token = secrets.token_urlsafe(24)
            webhook_secret = secrets.token_urlsafe(32)
            settings = load_settings(
                {
                    "DATABASE_URL": database_url,
                    "RECONCILER_ADMIN_TOKEN": token,
                    "RUNWARE_WEBHOOK_SECRET": webhook_secret,
                    "RUNWARE_API_KEY": config.api_key,
                    "RUNWARE_API_URL": simulator.url,
                    "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "0",
                }
            )
            async with serve(create_app(settings)) as service_url:
                console.print(f"[green]✓[/] Service on {service_url}")
                yield DemoStack(database_url, simulator, service_url, token)
    finally:
        await asyncio.to_thread(postgres.stop)


async def create_demo_project(stack: DemoStack, clips: int) -> tuple[UUID, list[str]]:
    """What the app does: submit jobs to Runware, store each job id as a pending clip."""
    job_ids = [str(uuid4()) for _ in range(clips)]
    async with RunwareClient(
        stack.simulator.url, stack.simulator.config.api_key, max_retries=2
    ) as runware:
        for index, job_id in enumerate(job_ids):
            # The last job is submitted with a model the simulator always fails.
            model = FAILING_MODEL if index == clips - 1 else "klingai:5@3"
            await runware.submit_video(job_id, webhook_url=None, model=model)
    project_id = uuid4()
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute(
            "insert into public.projects (id, name, clips) values ($1, 'demo', $2::jsonb)",
            project_id,
            json.dumps(dict.fromkeys(job_ids, "pending")),
        )
    finally:
        await conn.close()
    return project_id, job_ids


async def drive_checks(stack: DemoStack, project_id: UUID, console: Console) -> dict[str, Any]:
    """Call the check endpoint until nothing is pending or the deadline passes."""
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.service_url, timeout=30) as client:
        while True:
            response = await client.post(
                "/check-clips-status", json={"project_id": str(project_id)}, headers=headers
            )
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            elapsed = time.monotonic() - started
            console.print(
                f"  {elapsed:5.1f}s  completed {body['completed']}  pending {body['pending']}"
                f"  failed {body['failed']}"
                f"   (Runware requests so far: {stack.simulator.counters.requests_total})"
            )
            if body["pending"] == 0 or elapsed > SETTLE_DEADLINE_SECONDS:
                return body
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)


async def run_demo(clips: int = 6) -> int:
    console = Console()
    if clips < 2:
        console.print("[red]--clips must be at least 2 (one of them is made to fail)[/]")
        return 2
    async with demo_stack(console) as stack:
        project_id, job_ids = await create_demo_project(stack, clips)
        console.print(
            f"[green]✓[/] Project {project_id}: {len(job_ids)} jobs submitted, clips pending"
        )
        console.print("Checking through POST /check-clips-status until every clip settles:")
        final = await drive_checks(stack, project_id, console)
        render_check(final, console)
        counters = stack.simulator.counters
        console.print(
            f"Runware: {counters.requests_by_task_type['getResponse']} getResponse requests"
            f" for {counters.get_response_tasks} task checks."
        )
    if final["pending"]:
        console.print(f"[red]✗ {final['pending']} clips still pending after the deadline[/]")
        return 1
    console.print(
        f"[green]✓ Every clip settled:[/] {final['completed']} completed, {final['failed']} failed."
    )
    return 0
