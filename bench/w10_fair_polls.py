"""W10 fair polls: a lone job's completion-to-write latency, alone and beside a project holding
5,000 pending job ids that Runware does not know (issue 18, item 1).

Two runs side by side, each with a fresh database, simulator and service (its own process,
engine on, every webhook lost, so only polls settle a clip). The same lone jobs, each in a
project of its own, are written one after another, each finishing after the same number of
seconds in both runs. In the second run, a neighbour project with 5,000 pending job ids
Runware has never heard of (`taskNotFound`, within the grace period, so they stay pending and
are polled again and again) is written just before them. Before the fix, claims went by due
time across all projects and the neighbour's backlog filled every batch ahead of the lone jobs.

Writes are timed by the write-log trigger (bench/database.py) with the database's clock;
completions by the simulator's clock mapped onto the same wall clock (as W3).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.context import BenchContext
from bench.database import insert_projects, read_write_log
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.stats import percentile, ratio, rounded
from bench.w3_convergence import Clock
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from tests.processes import ServiceProcess

TARGET_RATIO = 1.5
_SEED = 10


@dataclass(frozen=True)
class Sizes:
    neighbour_jobs: int
    lone_jobs: int
    lone_every_seconds: float
    min_seconds: float
    max_seconds: float

    def service_env(self) -> dict[str, str]:
        # Defaults but two: a first check soon after the write (as in the measurement),
        # and a per-project limit that lets the neighbour's 5,000 jobs all be tracked, so that
        # the poll round's fairness is what is measured (the default limit, 1,000, would track
        # only a fifth of them).
        return {
            "RECONCILER_ENGINE": "1",
            "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "0.1",
            "RECONCILER_MAX_PENDING_PER_PROJECT": str(max(self.neighbour_jobs, 1000)),
        }


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(1_000, 4, 0.5, 1.0, 4.0)
    return Sizes(5_000, 12, 0.5, 1.0, 6.0)


@dataclass(frozen=True)
class Plan:
    lone: list[tuple[uuid.UUID, str, float]]  # (project, job, seconds until it finishes)
    neighbour: tuple[uuid.UUID, list[str]]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_plan(size: Sizes) -> Plan:
    rng = random.Random(_SEED)
    lone = [
        (uuid.UUID(_uuid(rng)), _uuid(rng), rng.uniform(size.min_seconds, size.max_seconds))
        for _ in range(size.lone_jobs)
    ]
    neighbour = (uuid.UUID(_uuid(rng)), [_uuid(rng) for _ in range(size.neighbour_jobs)])
    return Plan(lone, neighbour)


@dataclass(frozen=True)
class Side:
    latencies: list[float]
    runware_requests: int

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 0.5)

    @property
    def worst(self) -> float:
        return max(self.latencies, default=float("nan"))

    def as_json(self) -> dict[str, Any]:
        return {
            "lone_job_latencies_seconds": [round(s, 3) for s in self.latencies],
            "completion_to_write_p50_seconds": rounded(self.p50, 3),
            "completion_to_write_max_seconds": rounded(self.worst, 3),
            "runware_requests": self.runware_requests,
        }


async def _wait_written(db: asyncpg.Pool, projects: list[uuid.UUID], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        async with db.acquire() as conn:
            waiting = await conn.fetchval(
                "select count(*) from public.projects p, jsonb_each(p.clips) e"
                " where p.id = any($1::uuid[]) and e.value = '\"pending\"'::jsonb",
                projects,
            )
        if waiting == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{waiting} lone jobs still pending after {within:.0f} s")
        await asyncio.sleep(0.1)


async def _run(ctx: BenchContext, size: Sizes, plan: Plan, *, neighbour: bool) -> Side:
    label = "w10_neighbour" if neighbour else "w10_quiet"
    dsn = await ctx.databases.create(label, write_log=True)
    config = SimulatorConfig(seed=_SEED)
    config.webhooks.drop = 1.0  # no webhook: only polls settle a clip
    async with (
        RunwareSimulator(config) as sim,
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as db,
    ):
        env = ctx.service_env(dsn, sim.url, sim.config.api_key) | size.service_env()
        async with ServiceProcess(env, log_path=ctx.log_dir / f"{label}-service.log"):
            clock = Clock()
            if neighbour:
                async with db.acquire() as conn:
                    await insert_projects(conn, [plan.neighbour])  # unknown to Runware
                await asyncio.sleep(size.lone_every_seconds)
            for project, job, seconds in plan.lone:
                sim.add_job(job, duration=seconds, outcome="success")
                async with db.acquire() as conn:
                    await insert_projects(conn, [(project, [job])])
                await asyncio.sleep(size.lone_every_seconds)
            lone_projects = [project for project, _, _ in plan.lone]
            await _wait_written(db, lone_projects, size.max_seconds + 300)
            async with db.acquire() as conn:
                log = await read_write_log(conn, lone_projects)
    finish = {job: clock.wall(sim.state.jobs[job].finish_at) for _, job, _ in plan.lone}
    latencies = [log.settled_at[job] - finish[job] for job in finish if job in log.settled_at]
    return Side(latencies, sim.counters.requests_by_task_type["getResponse"])


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    plan = make_plan(size)
    ctx.say(f"W10 quiet: {size.lone_jobs} lone jobs, no neighbour")
    quiet = await _run(ctx, size, plan, neighbour=False)
    ctx.say(f"W10 the same lone jobs beside {size.neighbour_jobs:,} jobs Runware does not know")
    busy = await _run(ctx, size, plan, neighbour=True)
    return _outcome(size, quiet, busy)


def _outcome(size: Sizes, quiet: Side, busy: Side) -> Outcome:
    p50_ratio = ratio(busy.p50, quiet.p50)
    met = bool(p50_ratio <= TARGET_RATIO and len(busy.latencies) == size.lone_jobs)
    outcome = Outcome(
        name="W10",
        title="fair polls",
        params={
            "neighbour_jobs_unknown_to_runware": size.neighbour_jobs,
            "lone_jobs": size.lone_jobs,
            "lone_job_seconds": [size.min_seconds, size.max_seconds],
            "lone_job_every_seconds": size.lone_every_seconds,
            "service_settings": size.service_env(),
        },
        figures={"quiet": quiet.as_json(), "with_neighbour": busy.as_json()},
        ratios={
            "p50_latency_neighbour_over_quiet": rounded(p50_ratio),
            "max_latency_neighbour_over_quiet": rounded(ratio(busy.worst, quiet.worst)),
        },
        targets={"p50_ratio_at_most": TARGET_RATIO, "met": met},
        notes=[
            "latency = lone job's finish (simulator) to the write that settled its clip"
            " (trigger, clock_timestamp()); every webhook dropped; other settings default"
            " (Runware capped at 5 requests/s, claims of 200, at most 50 of one project)",
        ],
    )
    outcome.rows = [
        Row(
            "lone job completion → write p50",
            fmt(busy.p50, " s", 2),
            fmt(quiet.p50, " s", 2),
            fmt_ratio(p50_ratio),
            f"≤ {TARGET_RATIO:g}x",
            p50_ratio <= TARGET_RATIO,
        ),
        Row(
            "lone job completion → write max",
            fmt(busy.worst, " s", 2),
            fmt(quiet.worst, " s", 2),
            fmt_ratio(ratio(busy.worst, quiet.worst)),
        ),
    ]
    return outcome
