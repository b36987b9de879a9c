"""W1 check: one project with 50 pending (finished) clips, 50 ms per Runware request.

This service's `POST /check-clips-status` against the seed's algorithm (bench/seed_port.py),
alternating which goes first, on fresh projects each repetition. Both run in this process,
against the same in-process simulator and database; the seed is called as a function (no HTTP
hop to an edge function), which favours the seed.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.context import ADMIN_TOKEN, BenchContext
from bench.database import insert_projects, new_job_ids, read_write_log
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.seed_port import SeedRunware, seed_check
from bench.stats import median, ratio, rounded
from reconciler.app import create_app
from reconciler.config import load_settings
from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig

LATENCY_SECONDS = 0.05
BATCH_SIZE = 50
TARGET_SPEEDUP = 20.0


@dataclass(frozen=True)
class Sizes:
    clips: int
    repetitions: int


def sizes(quick: bool) -> Sizes:
    return Sizes(clips=10, repetitions=1) if quick else Sizes(clips=50, repetitions=5)


@dataclass
class Side:
    """One contender's samples, one entry per repetition."""

    wall_seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    tasks: list[int] = field(default_factory=list)
    row_writes: list[int] = field(default_factory=list)
    bookkeeping_rows: list[int] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    answers: list[dict[str, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "wall_seconds_median": rounded(median(self.wall_seconds)),
            "wall_seconds": [rounded(s) for s in self.wall_seconds],
            "runware_requests_per_check": self.requests,
            "get_response_tasks_per_check": self.tasks,
            "projects_row_writes_per_check": self.row_writes,
            "bookkeeping_rows_written_per_check": self.bookkeeping_rows,
            "clips_correct": all(self.correct),
        }


Check = Callable[[uuid.UUID], Awaitable[dict[str, Any]]]


async def _measure(
    side: Side, check: Check, sim: RunwareSimulator, db: asyncpg.Pool, clips: int
) -> None:
    jobs = new_job_ids(clips)
    for job in jobs:
        sim.add_job(job, duration=0, outcome="success")
    project = uuid.uuid4()
    async with db.acquire() as conn:
        await insert_projects(conn, [(project, jobs)])
        before = await read_write_log(conn, [project])
    sim.reset_counters()
    started = time.perf_counter()
    answer = await check(project)
    side.wall_seconds.append(time.perf_counter() - started)
    side.requests.append(sim.counters.requests_by_task_type["getResponse"])
    side.tasks.append(sim.counters.get_response_tasks)
    async with db.acquire() as conn:
        after = await read_write_log(conn, [project])
        stored = await conn.fetchval("select clips::text from public.projects where id=$1", project)
    side.row_writes.append(after.row_writes - before.row_writes)
    side.bookkeeping_rows.append(after.bookkeeping_rows - before.bookkeeping_rows)
    truth = sim.truth()
    side.correct.append(json.loads(stored) == {job: truth[job] for job in jobs})
    side.answers.append({k: int(answer.get(k, -1)) for k in ("completed", "pending", "failed")})


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    dsn = await ctx.databases.create("w1", write_log=True)
    config = SimulatorConfig(seed=1)
    config.api.latency_seconds = LATENCY_SECONDS
    service, seed = Side(), Side()
    async with (
        RunwareSimulator(config) as sim,
        asyncpg.create_pool(dsn, min_size=2, max_size=4) as db,
        httpx.AsyncClient(timeout=60) as seed_http,
    ):
        env = ctx.service_env(dsn, sim.url, config.api_key) | {
            "RECONCILER_ENGINE": "0",
            "RECONCILER_BATCH_SIZE": str(BATCH_SIZE),
        }
        async with (
            serve(create_app(load_settings(env))) as url,
            httpx.AsyncClient(
                base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ) as client,
        ):

            async def service_check(project: uuid.UUID) -> dict[str, Any]:
                body_in = {"project_id": str(project)}
                response = await client.post("/check-clips-status", json=body_in)
                response.raise_for_status()
                body: dict[str, Any] = response.json()
                return body

            seed_runware = SeedRunware(seed_http, sim.url, config.api_key)

            async def seed_port_check(project: uuid.UUID) -> dict[str, Any]:
                return await seed_check(db, seed_runware, project)

            # Warm both up (connections, prepared statements) on a small project.
            await _measure(Side(), service_check, sim, db, 2)
            await _measure(Side(), seed_port_check, sim, db, 2)
            for rep in range(size.repetitions):
                ctx.say(f"W1 repetition {rep + 1}/{size.repetitions}")
                order = [(service, service_check), (seed, seed_port_check)]
                for side, check in order if rep % 2 == 0 else reversed(order):
                    await _measure(side, check, sim, db, size.clips)
    return _outcome(size, service, seed)


def _outcome(size: Sizes, service: Side, seed: Side) -> Outcome:
    speedup = ratio(median(seed.wall_seconds), median(service.wall_seconds))
    expected_requests = math.ceil(size.clips / BATCH_SIZE)
    service_requests = max(service.requests)
    seed_requests = median([float(r) for r in seed.requests])
    outcome = Outcome(
        name="W1",
        title="check",
        params={
            "pending_clips": size.clips,
            "repetitions": size.repetitions,
            "runware_latency_seconds": LATENCY_SECONDS,
            "batch_size": BATCH_SIZE,
            "service_settings": "defaults, engine off (RECONCILER_ENGINE=0)",
        },
        figures={"service": service.as_json(), "seed": seed.as_json()},
        ratios={
            "speedup_wall_median": rounded(speedup),
            "runware_requests_seed_over_service": rounded(
                ratio(seed_requests, median([float(r) for r in service.requests]))
            ),
        },
        targets={
            "speedup_at_least": TARGET_SPEEDUP,
            "service_requests": expected_requests,
            "met": bool(speedup >= TARGET_SPEEDUP and service_requests <= expected_requests),
        },
        notes=[
            "wall = median over repetitions; writes = UPDATEs of the project's row (trigger log);"
            " bookkeeping = rows the service writes in reconciler.jobs (tracking, settling)",
        ],
    )
    outcome.rows = [
        Row(
            "wall time per check (median)",
            fmt(median(service.wall_seconds) * 1000, " ms"),
            fmt(median(seed.wall_seconds) * 1000, " ms"),
            fmt_ratio(speedup) + " faster",
            f"≥ {TARGET_SPEEDUP:g}x faster",
            bool(speedup >= TARGET_SPEEDUP),
        ),
        Row(
            "Runware requests per check",
            f"{service_requests}",
            fmt(seed_requests, "", 0),
            fmt_ratio(ratio(seed_requests, service_requests)) + " fewer",
            f"⌈{size.clips}/{BATCH_SIZE}⌉ = {expected_requests}",
            service_requests <= expected_requests,
        ),
        Row(
            "projects row writes per check",
            fmt(median([float(w) for w in service.row_writes]), "", 0),
            fmt(median([float(w) for w in seed.row_writes]), "", 0),
        ),
        Row(
            "bookkeeping rows written per check",
            fmt(median([float(w) for w in service.bookkeeping_rows]), "", 0),
            fmt(median([float(w) for w in seed.bookkeeping_rows]), "", 0),
        ),
        Row(
            "clips correct after every check",
            "yes" if all(service.correct) else "NO",
            "yes" if all(seed.correct) else "NO",
        ),
    ]
    return outcome
