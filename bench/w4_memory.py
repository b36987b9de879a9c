"""W4 memory: resident memory of one `reconciler serve` process (engine on) once its start-up
sweep tracks 1,000 and, in a second process, 100,000 pending jobs.

Projects with pending clips are created in bulk with SQL before the service starts; it learns
of them only through its start-up sweep. The first check is delayed by an hour, so nothing is
polled while we measure: the figure is the cost of tracking, not of a poll round (which is
bounded by the claim batch anyway).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt
from bench.stats import rounded
from tests.processes import ServiceProcess

CLIPS_PER_PROJECT = 10
TARGET_GROWTH_MB = 50.0
_SETTLE_SECONDS = 2.0

BULK_SQL = """
insert into public.projects (id, clips)
select gen_random_uuid(),
       (select jsonb_object_agg(md5(p.i::text || ':' || c.j::text)::uuid::text, 'pending')
          from generate_series(1, $2) as c(j))
  from generate_series(1, $1) as p(i)
"""


@dataclass(frozen=True)
class Sizes:
    small: int
    large: int


def sizes(quick: bool) -> Sizes:
    return Sizes(small=100, large=2_000) if quick else Sizes(small=1_000, large=100_000)


@dataclass(frozen=True)
class Measured:
    jobs: int
    rss_kib: int
    peak_kib: int
    sweep_seconds: float


async def _measure(ctx: BenchContext, jobs: int) -> Measured:
    dsn = await ctx.databases.create(f"w4_{jobs}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(BULK_SQL, jobs // CLIPS_PER_PROJECT, CLIPS_PER_PROJECT)
        env = ctx.service_env(dsn, "http://127.0.0.1:9/v1", "unused-in-w4") | {
            "RECONCILER_ENGINE": "1",
            "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "3600",
            "RECONCILER_SWEEP_SPREAD_SECONDS": "0",
        }
        async with ServiceProcess(env, log_path=ctx.log_dir / f"w4-{jobs}.log") as server:
            started = time.monotonic()
            deadline = started + 600
            while await conn.fetchval("select count(*) from reconciler.jobs") < jobs:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the sweep did not track {jobs} jobs in time")
                await asyncio.sleep(0.25)
            swept = time.monotonic() - started
            await asyncio.sleep(_SETTLE_SECONDS)
            memory = server.rss_kib()
    finally:
        await conn.close()
    return Measured(jobs, memory["VmRSS"], memory["VmHWM"], swept)


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    ctx.say(f"W4 service tracking {size.small:,} pending jobs")
    small = await _measure(ctx, size.small)
    ctx.say(f"W4 service tracking {size.large:,} pending jobs")
    large = await _measure(ctx, size.large)
    growth_mb = (large.rss_kib - small.rss_kib) / 1024
    outcome = Outcome(
        name="W4",
        title="memory",
        params={
            "jobs": [size.small, size.large],
            "clips_per_project": CLIPS_PER_PROJECT,
            "service_settings": "defaults, engine on, RECONCILER_FIRST_CHECK_DELAY_SECONDS=3600",
        },
        figures={
            m_name: {
                "jobs": m.jobs,
                "rss_mb": rounded(m.rss_kib / 1024, 1),
                "peak_rss_mb": rounded(m.peak_kib / 1024, 1),
                "sweep_seconds": rounded(m.sweep_seconds, 2),
            }
            for m_name, m in (("small", small), ("large", large))
        }
        | {"rss_growth_mb": rounded(growth_mb, 1)},
        targets={"growth_mb_at_most": TARGET_GROWTH_MB, "met": growth_mb <= TARGET_GROWTH_MB},
        notes=[
            "RSS = VmRSS of the service process once the start-up sweep tracked every job, "
            "plus 2 s; peak = VmHWM",
        ],
    )
    outcome.rows = [
        Row(f"RSS with {size.small:,} jobs tracked", fmt(small.rss_kib / 1024, " MB")),
        Row(
            f"RSS with {size.large:,} jobs tracked (peak)",
            f"{large.rss_kib / 1024:,.1f} MB ({large.peak_kib / 1024:,.1f})",
        ),
        Row(
            "RSS growth",
            fmt(growth_mb, " MB"),
            "",
            "",
            f"≤ {TARGET_GROWTH_MB:g} MB",
            growth_mb <= TARGET_GROWTH_MB,
        ),
        Row(
            f"start-up sweep of {size.large:,} jobs",
            fmt(large.sweep_seconds, " s"),
        ),
    ]
    return outcome
