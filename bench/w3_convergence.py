"""W3 convergence: 1,000 projects x 10 clips, every webhook lost, jobs finishing after a random
1-20 s. This service (its own process, engine on, learning of new clips through its change
feed) against the seed's algorithm run by a cron every N seconds over every project with
pending clips (a loop here, project after project, as one scheduled caller would run it).

Each side gets a fresh database and a fresh simulator with the same job durations. Writes are
timed by the write-log trigger (bench/database.py) with the database's clock; completions by
the simulator's clock mapped onto the same wall clock.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.context import BenchContext
from bench.database import WriteLog, insert_projects, pending_clips, read_write_log
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.seed_port import SeedRunware, projects_with_pending, seed_check
from bench.stats import percentile, ratio, rounded
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from tests.processes import ServiceProcess

TARGET_REQUESTS_PER_CLIP = 0.5
FAIL_SHARE = 0.05
_SEED = 3


@dataclass(frozen=True)
class Sizes:
    projects: int
    clips_per_project: int
    min_seconds: float
    max_seconds: float
    cron_seconds: float
    first_check_delay: float
    backoff_base: float
    backoff_cap: float
    poll_interval: float

    @property
    def clips(self) -> int:
        return self.projects * self.clips_per_project

    def service_env(self) -> dict[str, str]:
        return {
            "RECONCILER_ENGINE": "1",
            "RECONCILER_FIRST_CHECK_DELAY_SECONDS": str(self.first_check_delay),
            "RECONCILER_BACKOFF_BASE_SECONDS": str(self.backoff_base),
            "RECONCILER_BACKOFF_CAP_SECONDS": str(self.backoff_cap),
            "RECONCILER_POLL_INTERVAL_SECONDS": str(self.poll_interval),
            "RECONCILER_CLAIM_BATCH": "200",
            "RECONCILER_BATCH_SIZE": "50",
            "RECONCILER_RUNWARE_REQUESTS_PER_SECOND": "1000",
            "RECONCILER_SWEEP_SPREAD_SECONDS": "0",
        }


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(20, 5, 0.5, 3.0, 2.0, 0.5, 0.5, 2.0, 0.25)
    return Sizes(1_000, 10, 1.0, 20.0, 10.0, 5.0, 2.0, 10.0, 1.0)


@dataclass
class Side:
    requests: int
    tasks: int
    log: WriteLog
    latencies: list[float]
    converge_after_last_completion: float
    total_seconds: float
    correct: bool
    cron_pass_seconds: list[float] = field(default_factory=list)

    def as_json(self, clips: int) -> dict[str, Any]:
        return {
            "runware_requests": self.requests,
            "runware_requests_per_clip": rounded(self.requests / clips),
            "get_response_tasks_per_clip": rounded(self.tasks / clips),
            "projects_row_writes": self.log.row_writes,
            "projects_row_writes_per_clip": rounded(self.log.row_writes / clips),
            "clip_value_changes_per_clip": rounded(self.log.clip_changes / clips),
            "clips_changed_more_than_once": self.log.clips_changed_twice,
            "clips_changed_from_a_settled_value": self.log.clips_changed_from_settled,
            "bookkeeping_rows_per_clip": rounded(self.log.bookkeeping_rows / clips),
            "completion_to_write_p50_seconds": rounded(percentile(self.latencies, 0.5), 3),
            "completion_to_write_p90_seconds": rounded(percentile(self.latencies, 0.9), 3),
            "completion_to_write_p99_seconds": rounded(percentile(self.latencies, 0.99), 3),
            "completion_to_write_max_seconds": rounded(max(self.latencies, default=0.0), 3),
            "converged_seconds_after_last_completion": rounded(
                self.converge_after_last_completion, 3
            ),
            "total_seconds": rounded(self.total_seconds, 3),
            "clips_correct": self.correct,
            "cron_pass_seconds": [round(s, 2) for s in self.cron_pass_seconds],
        }


@dataclass(frozen=True)
class Plan:
    """Which jobs exist, in which projects, lasting how long and ending how."""

    projects: list[tuple[uuid.UUID, list[str]]]
    durations: dict[str, float]
    failing: set[str]


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def make_plan(size: Sizes) -> Plan:
    rng = random.Random(_SEED)
    projects: list[tuple[uuid.UUID, list[str]]] = []
    durations: dict[str, float] = {}
    failing: set[str] = set()
    for _ in range(size.projects):
        jobs = [_uuid(rng) for _ in range(size.clips_per_project)]
        for job in jobs:
            durations[job] = rng.uniform(size.min_seconds, size.max_seconds)
            if rng.random() < FAIL_SHARE:
                failing.add(job)
        projects.append((uuid.UUID(_uuid(rng)), jobs))
    return Plan(projects, durations, failing)


class Clock:
    """Maps the simulator's monotonic clock onto the wall clock the database stamps with."""

    def __init__(self) -> None:
        self.wall0 = time.time()
        self.mono0 = time.monotonic()

    def wall(self, monotonic: float) -> float:
        return self.wall0 + (monotonic - self.mono0)


async def _start_jobs(sim: RunwareSimulator, db: asyncpg.Pool, plan: Plan) -> None:
    """As the app would: submit each job, then store the project with its clips pending."""
    for job, seconds in plan.durations.items():
        sim.add_job(job, duration=seconds, outcome="error" if job in plan.failing else "success")
    async with db.acquire() as conn:
        await insert_projects(conn, plan.projects)


async def _wait_settled(db: asyncpg.Pool, within_seconds: float) -> None:
    deadline = time.monotonic() + within_seconds
    while True:
        async with db.acquire() as conn:
            if await pending_clips(conn) == 0:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"clips still pending after {within_seconds:.0f} s")
        await asyncio.sleep(0.25)


async def _collect(
    sim: RunwareSimulator, db: asyncpg.Pool, plan: Plan, clock: Clock, started: float
) -> Side:
    total = time.monotonic() - started
    async with db.acquire() as conn:
        log = await read_write_log(conn)
        rows = await conn.fetch("select clips::text as clips from public.projects")
    stored: dict[str, str] = {}
    for row in rows:
        stored.update(json.loads(row["clips"]))
    truth = sim.truth()
    finish = {job: clock.wall(sim.state.jobs[job].finish_at) for job in plan.durations}
    latencies = [at - finish[job] for job, at in log.settled_at.items() if job in finish]
    last_write = max(log.settled_at.values(), default=float("nan"))
    return Side(
        requests=sim.counters.requests_by_task_type["getResponse"],
        tasks=sim.counters.get_response_tasks,
        log=log,
        latencies=latencies,
        converge_after_last_completion=last_write - max(finish.values()),
        total_seconds=total,
        correct=stored == {job: truth[job] for job in plan.durations},
    )


def _simulator() -> RunwareSimulator:
    config = SimulatorConfig(seed=_SEED)
    config.webhooks.drop = 1.0  # no job has a webhook URL anyway: the app submits nothing
    return RunwareSimulator(config)


async def _run_service(ctx: BenchContext, size: Sizes, plan: Plan) -> Side:
    dsn = await ctx.databases.create("w3_service", write_log=True)
    async with _simulator() as sim, asyncpg.create_pool(dsn, min_size=1, max_size=2) as db:
        env = ctx.service_env(dsn, sim.url, sim.config.api_key) | size.service_env()
        async with ServiceProcess(env, log_path=ctx.log_dir / "w3-service.log"):
            clock = Clock()
            started = time.monotonic()
            await _start_jobs(sim, db, plan)
            await _wait_settled(db, size.max_seconds + 120)
            return await _collect(sim, db, plan, clock, started)


async def _run_seed_cron(ctx: BenchContext, size: Sizes, plan: Plan) -> Side:
    dsn = await ctx.databases.create("w3_seed", write_log=True)
    async with (
        _simulator() as sim,
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as db,
        httpx.AsyncClient(timeout=60) as http,
    ):
        runware = SeedRunware(http, sim.url, sim.config.api_key)
        clock = Clock()
        started = time.monotonic()
        await _start_jobs(sim, db, plan)
        deadline = started + size.max_seconds + 300
        passes: list[float] = []
        while True:
            tick = time.monotonic()
            projects = await projects_with_pending(db)
            if not projects:
                break
            for project in projects:
                await seed_check(db, runware, project)
            passes.append(time.monotonic() - tick)
            if time.monotonic() > deadline:
                raise TimeoutError("the seed's cron did not converge")
            await asyncio.sleep(max(0.0, tick + size.cron_seconds - time.monotonic()))
        side = await _collect(sim, db, plan, clock, started)
        side.cron_pass_seconds = passes
        return side


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    plan = make_plan(size)
    ctx.say(f"W3 service: {size.projects:,} projects x {size.clips_per_project} clips")
    service = await _run_service(ctx, size, plan)
    ctx.say(f"W3 seed algorithm on a cron every {size.cron_seconds:g} s")
    seed = await _run_seed_cron(ctx, size, plan)
    return _outcome(size, service, seed)


def _outcome(size: Sizes, service: Side, seed: Side) -> Outcome:
    clips = size.clips
    service_rpc = service.requests / clips
    seed_rpc = seed.requests / clips
    clip_writes = service.log.clip_changes / clips
    once = service.log.clips_changed_twice == 0 and service.log.clip_changes == clips
    outcome = Outcome(
        name="W3",
        title="convergence",
        params={
            "projects": size.projects,
            "clips_per_project": size.clips_per_project,
            "job_seconds": [size.min_seconds, size.max_seconds],
            "failing_share": FAIL_SHARE,
            "cron_every_seconds": size.cron_seconds,
            "runware_latency_seconds": 0.0,
            "service_settings": size.service_env(),
        },
        figures={"service": service.as_json(clips), "seed_cron": seed.as_json(clips)},
        ratios={
            "runware_requests_seed_over_service": rounded(ratio(seed_rpc, service_rpc)),
            "p50_latency_seed_over_service": rounded(
                ratio(percentile(seed.latencies, 0.5), percentile(service.latencies, 0.5))
            ),
            "p99_latency_seed_over_service": rounded(
                ratio(percentile(seed.latencies, 0.99), percentile(service.latencies, 0.99))
            ),
        },
        targets={
            "runware_requests_per_clip_at_most": TARGET_REQUESTS_PER_CLIP,
            "clip_writes_per_clip": 1,
            "met": bool(service_rpc <= TARGET_REQUESTS_PER_CLIP and once),
        },
        notes=[
            "row writes = UPDATEs of projects rows (several clips can settle in one write);"
            " clip writes = times a clip's value changed; latency = job finish (simulator) to"
            " the write that settled its clip (trigger, clock_timestamp())",
            "the seed's cron runs project after project; a pass over every pending job takes"
            " longer than N when there are many, so passes then run back to back",
        ],
    )
    outcome.rows = [
        Row(
            "Runware requests per clip",
            fmt(service_rpc, "", 3),
            fmt(seed_rpc, "", 3),
            fmt_ratio(ratio(seed_rpc, service_rpc)) + " fewer",
            f"≤ {TARGET_REQUESTS_PER_CLIP:g}",
            service_rpc <= TARGET_REQUESTS_PER_CLIP,
        ),
        Row(
            "clip writes per clip (value changes)",
            fmt(clip_writes, "", 3),
            fmt(seed.log.clip_changes / clips, "", 3),
            "",
            "exactly 1",
            once,
        ),
        Row(
            "projects row writes per clip",
            fmt(service.log.row_writes / clips, "", 3),
            fmt(seed.log.row_writes / clips, "", 3),
        ),
        Row(
            "bookkeeping rows written per clip",
            fmt(service.log.bookkeeping_rows / clips, "", 2),
            fmt(seed.log.bookkeeping_rows / clips, "", 2),
        ),
        Row(
            "completion → write p50",
            fmt(percentile(service.latencies, 0.5), " s", 2),
            fmt(percentile(seed.latencies, 0.5), " s", 2),
            fmt_ratio(ratio(percentile(seed.latencies, 0.5), percentile(service.latencies, 0.5)))
            + " sooner",
        ),
        Row(
            "completion → write p99",
            fmt(percentile(service.latencies, 0.99), " s", 2),
            fmt(percentile(seed.latencies, 0.99), " s", 2),
            fmt_ratio(ratio(percentile(seed.latencies, 0.99), percentile(service.latencies, 0.99)))
            + " sooner",
        ),
        Row(
            "converged after last completion",
            fmt(service.converge_after_last_completion, " s", 2),
            fmt(seed.converge_after_last_completion, " s", 2),
        ),
        Row(
            "clips correct at the end",
            "yes" if service.correct else "NO",
            "yes" if seed.correct else "NO",
        ),
        Row(
            "cron passes (longest pass)",
            "",
            f"{len(seed.cron_pass_seconds)} ({max(seed.cron_pass_seconds, default=0.0):.1f} s)",
        ),
    ]
    return outcome
