"""W11 user check bounds: what one signed-in user's checks can cost the service and its shared
Runware budget (issue 18, items 2 and 3).

A. Runware requests: one user checks a project holding 5,000 pending jobs (all still working)
   as fast as the per-user rate limit lets them, for a window; the simulator counts the
   `getResponse` requests. Beside it, the same project checked once with full access, which
   asks about every pending job: what every user check cost before the cap.
B. Memory: a project whose clips column is 20 MB; 4 concurrent user checks; the peak RSS growth
   of the `reconciler serve` process (VmHWM after the checks minus VmRSS before), with /healthz
   asked every 50 ms meanwhile. Beside it, 4 concurrent full-access checks of the same row in
   a fresh process: they read and answer the row whole (what user checks did before the cap).

Both run `reconciler serve` as its own process (engine off: only the checks ask Runware), on
the Postgres transport, with the app's row-level security installed (tests/sql/app_rls.sql).
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt

from bench.context import ADMIN_TOKEN, BenchContext
from bench.report import Outcome, Row, fmt
from bench.stats import rounded
from reconciler.config import DEFAULTS
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from tests.processes import ServiceProcess

APP_RLS = Path(__file__).resolve().parents[1] / "tests" / "sql" / "app_rls.sql"
# Only the issuer is read from it: the Postgres transport serves the check.
SUPABASE_URL = "http://127.0.0.1:9"
JWT_SECRET = secrets.token_urlsafe(48)
USER = uuid.uuid4()
CONCURRENT_CHECKS = 4
TARGET_GROWTH_MB = 100.0
HEALTHZ_EVERY_SECONDS = 0.05

BIG_ROW_SQL = """
insert into public.projects (id, clips, user_id)
select $1,
       jsonb_object_agg(gen_random_uuid()::text,
                        'https://vm.runware.ai/video/os/a1b2c3d4/ws/2/vi/'
                        || md5(i::text) || '.mp4')
         || (select jsonb_object_agg(gen_random_uuid()::text, 'pending')
               from generate_series(1, $3))
       , $4
  from generate_series(1, $2) as i
"""


@dataclass(frozen=True)
class Sizes:
    pending: int
    window_seconds: float
    big_row_clips: int


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(pending=500, window_seconds=5.0, big_row_clips=20_000)
    # 160,000 clips of about 130 bytes each: a 20 MB clips column.
    return Sizes(pending=5_000, window_seconds=60.0, big_row_clips=160_000)


def _user_token() -> str:
    claims = {
        "sub": str(USER),
        "aud": "authenticated",
        "iss": f"{SUPABASE_URL}/auth/v1",
        "role": "authenticated",
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def _env(ctx: BenchContext, dsn: str, sim: RunwareSimulator) -> dict[str, str]:
    return ctx.service_env(dsn, sim.url, sim.config.api_key) | {
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RECONCILER_ENGINE": "0",
        "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "3600",
    }


async def _database(ctx: BenchContext, label: str) -> str:
    dsn = await ctx.databases.create(label)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(APP_RLS.read_text())
    finally:
        await conn.close()
    return dsn


def _get_responses(sim: RunwareSimulator) -> int:
    return sim.counters.requests_by_task_type["getResponse"]


# --- A. Runware requests per minute --------------------------------------------------------


@dataclass(frozen=True)
class RequestCost:
    pending: int
    window_seconds: float
    checks_answered: int
    checks_refused: int
    user_requests: int
    full_access_requests_per_check: int

    @property
    def user_requests_per_minute(self) -> float:
        return self.user_requests * 60.0 / self.window_seconds

    @property
    def checks_per_minute(self) -> float:
        return self.checks_answered * 60.0 / self.window_seconds

    @property
    def before_requests(self) -> int:
        """The same checks, had each asked about every pending job (before the cap)."""
        return self.checks_answered * self.full_access_requests_per_check

    @property
    def before_requests_per_minute(self) -> float:
        """The same checks, had each asked about every pending job (before the cap)."""
        return self.checks_per_minute * self.full_access_requests_per_check


async def _request_cost(ctx: BenchContext, size: Sizes) -> RequestCost:
    dsn = await _database(ctx, "w11_requests")
    project = uuid.uuid4()
    jobs = [str(uuid.uuid4()) for _ in range(size.pending)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "insert into public.projects (id, clips, user_id) values ($1, $2::jsonb, $3)",
            project,
            json.dumps(dict.fromkeys(jobs, "pending")),
            USER,
        )
    finally:
        await conn.close()
    body = {"project_id": str(project)}
    async with RunwareSimulator(SimulatorConfig(api_key="w11-key")) as sim:
        for job in jobs:
            sim.add_job(job, duration=3600)  # all still working: nothing settles
        async with (
            ServiceProcess(
                _env(ctx, dsn, sim), log_path=ctx.log_dir / "w11-requests.log"
            ) as server,
            httpx.AsyncClient(base_url=server.url, timeout=120) as client,
        ):
            user = {"Authorization": f"Bearer {_user_token()}"}
            answered = refused = 0
            before = _get_responses(sim)
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < size.window_seconds:
                answer = await client.post("/check-clips-status", json=body, headers=user)
                if answer.status_code == 200:
                    answered += 1
                elif answer.status_code == 429:
                    refused += 1
                    wait = float(answer.headers.get("retry-after", "1"))
                    await asyncio.sleep(min(wait, size.window_seconds - elapsed))
                else:
                    raise RuntimeError(f"user check answered {answer.status_code}: {answer.text}")
            window = time.monotonic() - started
            user_requests = _get_responses(sim) - before
            before = _get_responses(sim)
            full = await client.post(
                "/check-clips-status",
                json=body,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            full.raise_for_status()
            full_requests = _get_responses(sim) - before
    return RequestCost(size.pending, window, answered, refused, user_requests, full_requests)


# --- B. Memory of a 20 MB clips row --------------------------------------------------------


@dataclass(frozen=True)
class MemoryCost:
    row_mb: float
    rss_before_mb: float
    peak_after_mb: float
    answer_bytes: int
    healthz_worst_ms: float
    seconds: float

    @property
    def growth_mb(self) -> float:
        return self.peak_after_mb - self.rss_before_mb


async def _healthz_worst(client: httpx.AsyncClient, done: asyncio.Event) -> float:
    worst = 0.0
    while not done.is_set():
        started = time.monotonic()
        (await client.get("/healthz")).raise_for_status()
        worst = max(worst, time.monotonic() - started)
        await asyncio.sleep(HEALTHZ_EVERY_SECONDS)
    return worst


async def _memory_cost(ctx: BenchContext, size: Sizes, *, full_access: bool) -> MemoryCost:
    label = "full" if full_access else "user"
    dsn = await _database(ctx, f"w11_memory_{label}")
    project = uuid.uuid4()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(BIG_ROW_SQL, project, size.big_row_clips, 50, USER)
        row_bytes = await conn.fetchval(
            "select octet_length(clips::text) from public.projects where id = $1", project
        )
    finally:
        await conn.close()
    token = ADMIN_TOKEN if full_access else _user_token()
    headers = {"Authorization": f"Bearer {token}"}
    async with RunwareSimulator(SimulatorConfig(api_key="w11-key")) as sim:
        env = _env(ctx, dsn, sim)
        async with (
            ServiceProcess(env, log_path=ctx.log_dir / f"w11-memory-{label}.log") as server,
            httpx.AsyncClient(base_url=server.url, timeout=600) as client,
        ):
            # Warm: one check of an unknown project loads every code path but the row's.
            await client.post(
                "/check-clips-status", json={"project_id": str(uuid.uuid4())}, headers=headers
            )
            rss_before = server.rss_kib()["VmRSS"]
            done = asyncio.Event()
            watcher = asyncio.create_task(_healthz_worst(client, done))
            started = time.monotonic()
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/check-clips-status", json={"project_id": str(project)}, headers=headers
                    )
                    for _ in range(CONCURRENT_CHECKS)
                )
            )
            seconds = time.monotonic() - started
            done.set()
            healthz_worst = await watcher
            peak_after = server.rss_kib()["VmHWM"]
    for answer in answers:
        answer.raise_for_status()
    return MemoryCost(
        row_mb=row_bytes / 1e6,
        rss_before_mb=rss_before / 1024,
        peak_after_mb=peak_after / 1024,
        answer_bytes=max(len(a.content) for a in answers),
        healthz_worst_ms=healthz_worst * 1000,
        seconds=seconds,
    )


def _memory_json(m: MemoryCost) -> dict[str, Any]:
    return {
        "row_mb": rounded(m.row_mb, 1),
        "rss_before_mb": rounded(m.rss_before_mb, 1),
        "peak_after_mb": rounded(m.peak_after_mb, 1),
        "peak_growth_mb": rounded(m.growth_mb, 1),
        "largest_answer_bytes": m.answer_bytes,
        "healthz_worst_ms": rounded(m.healthz_worst_ms, 1),
        "seconds": rounded(m.seconds, 2),
    }


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    ctx.say(f"W11 one user checking a project of {size.pending:,} pending jobs non-stop")
    cost = await _request_cost(ctx, size)
    ctx.say(f"W11 {CONCURRENT_CHECKS} concurrent user checks of a large clips row")
    user = await _memory_cost(ctx, size, full_access=False)
    ctx.say(f"W11 {CONCURRENT_CHECKS} concurrent full-access checks of the same row")
    full = await _memory_cost(ctx, size, full_access=True)
    per_check_bound = math.ceil(DEFAULTS.user_check_max_jobs / DEFAULTS.batch_size)
    # The window's bound: the burst, then the sustained rate (70 in the first minute).
    window_bound = per_check_bound * (
        DEFAULTS.check_rate_burst + DEFAULTS.check_rate_per_minute * cost.window_seconds / 60
    )
    requests_met = cost.user_requests <= window_bound
    memory_met = user.growth_mb <= TARGET_GROWTH_MB
    outcome = Outcome(
        name="W11",
        title="user check bounds",
        params={
            "pending_jobs": size.pending,
            "window_seconds": size.window_seconds,
            "big_row_clips": size.big_row_clips,
            "concurrent_checks": CONCURRENT_CHECKS,
            "service_settings": "defaults (RECONCILER_USER_CHECK_MAX_JOBS, "
            "RECONCILER_USER_CHECK_MAX_CLIPS_BYTES, RECONCILER_CHECK_RATE_*), engine off",
        },
        figures={
            "requests": {
                "checks_answered": cost.checks_answered,
                "checks_refused_429": cost.checks_refused,
                "window_seconds": rounded(cost.window_seconds, 1),
                "user_requests": cost.user_requests,
                "user_requests_per_minute": rounded(cost.user_requests_per_minute, 1),
                "full_access_requests_per_check": cost.full_access_requests_per_check,
                "before_requests": cost.before_requests,
                "before_requests_per_minute": rounded(cost.before_requests_per_minute, 1),
            },
            "memory_user_checks": _memory_json(user),
            "memory_full_access_checks": _memory_json(full),
        },
        targets={
            "user_requests_in_window_at_most": rounded(window_bound, 1),
            "peak_growth_mb_at_most": TARGET_GROWTH_MB,
            "met": requests_met and memory_met,
        },
        notes=[
            "before = each answered user check asking about every pending job, as a "
            "full-access check still does (measured once on the same project); an upper "
            "bound for main, whose checks took longer to answer (19 s at 5,000 pending)",
            "peak growth = VmHWM after the checks minus VmRSS before them",
        ],
    )
    outcome.rows = [
        Row(
            f"Runware requests per user check, {size.pending:,} pending",
            fmt(cost.user_requests / max(cost.checks_answered, 1), "", 2),
            f"uncapped: {cost.full_access_requests_per_check}",
        ),
        Row(
            f"Runware requests in {cost.window_seconds:.0f} s, one user checking non-stop",
            f"{cost.user_requests:,} ({cost.checks_answered} checks)",
            f"uncapped: {cost.before_requests:,}",
            "",
            f"≤ {window_bound:,.0f}",
            requests_met,
        ),
        Row(
            f"peak RSS growth, {CONCURRENT_CHECKS} checks of a {user.row_mb:.0f} MB clips row",
            fmt(user.growth_mb, " MB"),
            f"full access: {full.growth_mb:,.1f} MB",
            "",
            f"≤ {TARGET_GROWTH_MB:g} MB",
            memory_met,
        ),
        Row(
            "largest answer; worst /healthz meanwhile",
            f"{user.answer_bytes / 1e3:,.1f} kB; {user.healthz_worst_ms:,.0f} ms",
            f"{full.answer_bytes / 1e6:,.1f} MB; {full.healthz_worst_ms:,.0f} ms",
        ),
    ]
    return outcome
