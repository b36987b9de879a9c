"""W2 webhook ingest: 20,000 flat success webhooks for distinct pending jobs, concurrency 32,
against one `reconciler serve` process (engine off) on real PostgreSQL.

Beside it, with the same load generator and the same bodies: a bare Starlette endpoint in its
own uvicorn process (the HTTP bound), and the same guarded write straight through asyncpg at
concurrency 32 (the database bound; also at 10 connections, the service's default pool size).
Each contender gets its own fresh, identical database. The contenders take turns, several
rounds, so drift on a shared machine (this one is a VM) hits them alike: throughput is the
median over rounds, latency percentiles are over every request of every round.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from bench.context import WEBHOOK_SECRET, BenchContext
from bench.cpu import postgres_cpu_seconds, process_cpu_seconds
from bench.database import insert_projects, new_job_ids, pending_clips
from bench.loadgen import LoadResult, post_request, run_load, run_workers
from bench.report import Outcome, Row, fmt
from bench.stats import median, percentile, ratio, rounded
from reconciler.store.calls import INGEST_RESULT
from reconciler.store.postgres import statement_for
from tests.processes import ServiceProcess

CONCURRENCY = 32
SERVICE_POOL = 10  # the service's default RECONCILER_DB_POOL_SIZE
WARMUP_PER_CONNECTION = 4
TARGET_SHARE_OF_BARE = 0.5
TARGET_P99_SECONDS = 0.050
VIDEO_URL = "https://vm.runware.ai/video/os/bench/ws/2/vi/{}.mp4"
# The same statement the service's Postgres transport sends.
INGEST_SQL = statement_for(INGEST_RESULT)


@dataclass(frozen=True)
class Sizes:
    webhooks: int
    projects: int
    rounds: int


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(webhooks=1_000, projects=100, rounds=1)
    return Sizes(webhooks=20_000, projects=2_000, rounds=3)


@dataclass(frozen=True)
class Run:
    """One measured run, and the CPU the server, PostgreSQL and the load generator used."""

    load: LoadResult
    server_cpu_seconds: float
    postgres_cpu_seconds: float
    loadgen_cpu_seconds: float
    stored: bool


@dataclass
class Contender:
    runs: list[Run] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return median([run.load.throughput for run in self.runs])

    @property
    def latencies(self) -> list[float]:
        return [s for run in self.runs for s in run.load.latencies]

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def cpu_share(self, part: str) -> float:
        wall = sum(run.load.wall_seconds for run in self.runs)
        return ratio(sum(float(getattr(run, f"{part}_cpu_seconds")) for run in self.runs), wall)

    @property
    def all_ok(self) -> bool:
        return all(
            run.stored and run.load.statuses.get(200, 0) == run.load.requests > 0
            for run in self.runs
        )

    def as_json(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for run in self.runs:
            for code, n in run.load.statuses.items():
                statuses[str(code)] = statuses.get(str(code), 0) + n
        return {
            "throughput_per_second_median": rounded(self.throughput, 1),
            "throughput_per_second_by_round": [
                rounded(run.load.throughput, 1) for run in self.runs
            ],
            "requests_per_round": [run.load.requests for run in self.runs],
            "latency_p50_ms": rounded(self.p(0.5) * 1000, 3),
            "latency_p90_ms": rounded(self.p(0.9) * 1000, 3),
            "latency_p99_ms": rounded(self.p(0.99) * 1000, 3),
            "latency_max_ms": rounded(max(self.latencies, default=0.0) * 1000, 3),
            "statuses": statuses,
            "connection_errors": sum(run.load.connection_errors for run in self.runs),
            "all_answered_200_and_stored": self.all_ok,
            "server_cpu_cores": rounded(self.cpu_share("server"), 3),
            "postgres_cpu_cores": rounded(self.cpu_share("postgres"), 3),
            "loadgen_cpu_cores": rounded(self.cpu_share("loadgen"), 3),
        }


def _body(job: str) -> bytes:
    item = {
        "taskType": "videoInference",
        "taskUUID": job,
        "status": "success",
        "videoUUID": job,
        "videoURL": VIDEO_URL.format(job),
        "cost": 0.11,
        "seed": 1234,
    }
    return json.dumps(item).encode()


async def _prepare(ctx: BenchContext, label: str, jobs: list[str], projects: int) -> str:
    """A database whose `projects` hold every job pending, job i in project i mod `projects`:
    consecutive webhooks hit different rows, as completions of many users' videos would."""
    dsn = await ctx.databases.create(label)
    ids = [uuid.uuid4() for _ in range(projects)]
    conn = await asyncpg.connect(dsn)
    try:
        await insert_projects(conn, [(pid, jobs[i::projects]) for i, pid in enumerate(ids)])
        # The jobs are tracked, as the engine's drain of the outbox would have done long before
        # their videos finish: the webhook path then finds them with one index look-up.
        await conn.execute("select public.reconciler_drain_changes($1, 3600, 0)", projects * 2)
        await conn.execute("vacuum analyze public.projects")
        await conn.execute("vacuum analyze reconciler.jobs")
    finally:
        await conn.close()
    return dsn


async def _all_settled(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return await pending_clips(conn) == 0
    finally:
        await conn.close()


async def _http_run(
    server: ServiceProcess, bodies: list[bytes], warmup: int, dsn: str | None
) -> Run:
    path = f"/webhooks/runware?token={WEBHOOK_SECRET}"
    requests = [post_request("127.0.0.1", server.port, path, body) for body in bodies]
    await run_load("127.0.0.1", server.port, requests[:warmup], CONCURRENCY)
    cpu0 = process_cpu_seconds(server.pid)
    pg0 = postgres_cpu_seconds()
    gen0 = time.process_time()
    load = await run_load("127.0.0.1", server.port, requests[warmup:], CONCURRENCY)
    gen = time.process_time() - gen0
    pg = postgres_cpu_seconds() - pg0
    cpu = process_cpu_seconds(server.pid) - cpu0
    stored = True if dsn is None else await _all_settled(dsn)
    return Run(load, cpu, pg, gen, stored)


def _bare_endpoint(log_path: Path) -> ServiceProcess:
    """`python -m bench.bare_endpoint`: the HTTP bound, served as the service is."""
    return ServiceProcess(
        {}, arguments=("-m", "bench.bare_endpoint"), ready_path="/healthz", log_path=log_path
    )


async def _driver_run(dsn: str, jobs: list[str], warmup: int, connections: int) -> Run:
    """The database bound: the guarded write over `connections` connections, nothing else."""

    async def drive(pool: asyncpg.Pool, batch: list[str], result: LoadResult) -> None:
        queue = iter(batch)

        async def worker() -> None:
            async with pool.acquire() as conn:
                for job in queue:
                    started = time.perf_counter()
                    await conn.fetchval(INGEST_SQL, job, VIDEO_URL.format(job), None, 30.0)
                    result.latencies.append(time.perf_counter() - started)
                    result.requests += 1
                    result.statuses[200] += 1

        started = time.perf_counter()
        await run_workers(worker, connections)
        result.wall_seconds = time.perf_counter() - started

    async with asyncpg.create_pool(dsn, min_size=connections, max_size=connections) as pool:
        await drive(pool, jobs[:warmup], LoadResult())
        pg0, gen0 = postgres_cpu_seconds(), time.process_time()
        load = LoadResult()
        await drive(pool, jobs[warmup:], load)
        gen = time.process_time() - gen0
        pg = postgres_cpu_seconds() - pg0
    return Run(load, gen, pg, gen, await _all_settled(dsn))


@dataclass
class Contenders:
    service: Contender = field(default_factory=Contender)
    bare: Contender = field(default_factory=Contender)
    driver: Contender = field(default_factory=Contender)
    driver_pool: Contender = field(default_factory=Contender)


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    warmup = CONCURRENCY * WARMUP_PER_CONNECTION
    jobs = new_job_ids(size.webhooks + warmup)
    bodies = [_body(job) for job in jobs]
    c = Contenders()
    for round_no in range(1, size.rounds + 1):
        tag = f"W2 round {round_no}/{size.rounds}"
        service_dsn = await _prepare(ctx, "w2_service", jobs, size.projects)
        driver_dsn = await _prepare(ctx, "w2_driver", jobs, size.projects)
        pool_dsn = await _prepare(ctx, "w2_driver_pool", jobs, size.projects)
        env = ctx.service_env(service_dsn, "http://127.0.0.1:9/v1", "unused-in-w2") | {
            "RECONCILER_ENGINE": "0",
        }
        ctx.say(f"{tag}: service, {size.webhooks:,} webhooks at concurrency {CONCURRENCY}")
        log = ctx.log_dir / f"w2-service-{round_no}.log"
        async with ServiceProcess(env, log_path=log) as server:
            c.service.runs.append(await _http_run(server, bodies, warmup, service_dsn))
        ctx.say(f"{tag}: bare endpoint")
        async with _bare_endpoint(ctx.log_dir / f"w2-bare-{round_no}.log") as server:
            c.bare.runs.append(await _http_run(server, bodies, warmup, None))
        ctx.say(f"{tag}: guarded write through asyncpg, {CONCURRENCY} and {SERVICE_POOL} conns")
        c.driver.runs.append(await _driver_run(driver_dsn, jobs, warmup, CONCURRENCY))
        c.driver_pool.runs.append(await _driver_run(pool_dsn, jobs, warmup, SERVICE_POOL))
    return _outcome(size, c)


def _outcome(size: Sizes, c: Contenders) -> Outcome:
    share_of_bare = ratio(c.service.throughput, c.bare.throughput)
    share_of_driver = ratio(c.service.throughput, c.driver.throughput)
    p99 = c.service.p(0.99)
    met = bool(share_of_bare >= TARGET_SHARE_OF_BARE and p99 <= TARGET_P99_SECONDS)
    outcome = Outcome(
        name="W2",
        title="webhook ingest",
        params={
            "webhooks_per_round": size.webhooks,
            "projects": size.projects,
            "rounds": size.rounds,
            "concurrency": CONCURRENCY,
            "warmup_requests_not_counted": CONCURRENCY * WARMUP_PER_CONNECTION,
            "service_settings": "defaults (DB pool 10, log level info), RECONCILER_ENGINE=0",
            "driver_connections": [CONCURRENCY, SERVICE_POOL],
        },
        figures={
            "service": c.service.as_json(),
            "bare_endpoint": c.bare.as_json(),
            "driver": c.driver.as_json(),
            f"driver_{SERVICE_POOL}_connections": c.driver_pool.as_json(),
        },
        ratios={
            "service_over_bare_throughput": rounded(share_of_bare),
            "service_over_driver_throughput": rounded(share_of_driver),
            f"service_over_driver_{SERVICE_POOL}_throughput": rounded(
                ratio(c.service.throughput, c.driver_pool.throughput)
            ),
            "driver_over_bare_throughput": rounded(ratio(c.driver.throughput, c.bare.throughput)),
        },
        targets={
            "share_of_bare_at_least": TARGET_SHARE_OF_BARE,
            "p99_ms_at_most": TARGET_P99_SECONDS * 1000,
            "met": met,
        },
        notes=[
            "one closed-loop load generator (raw HTTP/1.1 keep-alive, 32 connections) in the"
            " bench process; CPU = cores busy on average during the measured runs"
            " (server / PostgreSQL / load generator); the machine has "
            "2 cores, shared by all three",
        ],
    )
    outcome.rows = [
        Row(
            "throughput vs HTTP bound (bare endpoint)",
            fmt(c.service.throughput, "/s", 0),
            fmt(c.bare.throughput, "/s", 0),
            f"{share_of_bare:.0%}",
            f"≥ {TARGET_SHARE_OF_BARE:.0%} of bare",
            bool(share_of_bare >= TARGET_SHARE_OF_BARE),
        ),
        Row(
            f"throughput vs DB bound ({CONCURRENCY} conns)",
            fmt(c.service.throughput, "/s", 0),
            fmt(c.driver.throughput, "/s", 0),
            f"{share_of_driver:.0%}",
        ),
        Row(
            f"throughput vs DB bound ({SERVICE_POOL} conns)",
            fmt(c.service.throughput, "/s", 0),
            fmt(c.driver_pool.throughput, "/s", 0),
            f"{ratio(c.service.throughput, c.driver_pool.throughput):.0%}",
        ),
        Row(
            "latency p50 (bare / DB 32 / DB 10)",
            fmt(c.service.p(0.5) * 1000, " ms", 1),
            _ms(c, 0.5),
        ),
        Row(
            "latency p99 (bare / DB 32 / DB 10)",
            fmt(p99 * 1000, " ms", 1),
            _ms(c, 0.99),
            "",
            f"≤ {TARGET_P99_SECONDS * 1000:g} ms",
            bool(p99 <= TARGET_P99_SECONDS),
        ),
        Row("CPU cores: server / postgres / loadgen", _cpu(c.service), f"bare {_cpu(c.bare)}"),
        Row(
            "",
            "",
            f"DB 32: loop {c.driver.cpu_share('server'):.2f} / "
            f"postgres {c.driver.cpu_share('postgres'):.2f}",
        ),
        Row(
            "all answered 200 and stored",
            "yes" if c.service.all_ok else "NO",
            "yes" if c.driver.all_ok and c.driver_pool.all_ok else "NO",
        ),
    ]
    return outcome


def _ms(c: Contenders, fraction: float) -> str:
    values = (c.bare.p(fraction), c.driver.p(fraction), c.driver_pool.p(fraction))
    return " / ".join(f"{v * 1000:.1f}" for v in values) + " ms"


def _cpu(contender: Contender) -> str:
    parts = (contender.cpu_share(p) for p in ("server", "postgres", "loadgen"))
    return " / ".join(f"{p:.2f}" for p in parts)
