"""W9 status cost: `reconciler status` (read_overview) with 100,000 unsettled jobs vs 1,000.

What an operator runs during an incident must not get slower as the backlog grows (I10): the
overview should cost about the same whatever the number of unsettled jobs. Two databases with
every migration hold the same fixed state — 200 failures in the last 24 hours over 10 reasons,
50 parked webhook results, 3 replica heartbeats, 20,000 settled jobs of history — and differ
only in the unsettled jobs: 1,000 vs 100,000 (`--quick`: 1,000 vs 10,000), their ages spread
evenly over the last 8 hours (every age bucket holds some), 20 per project, as tracked rows.

The read is the service's own: `read_overview()` through the Postgres store (two SQL calls:
the overview and the archive backlog). Its age buckets sum per-minute counts that triggers on
`reconciler.jobs` keep, so they cost the minutes spanned (480 here, on both sides), not the
jobs; the rest is the 20 oldest (an index walk), 24 h of failures and the replicas, the same
on both sides.
Reads of the two databases alternate (small, large, large, small, …); medians are compared.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.stats import ratio, rounded
from reconciler.migrations import apply_migrations
from reconciler.operator.views import read_overview
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store

JOBS_PER_PROJECT = 20
FAILURES = 200
PARKED = 50
REPLICAS = 3
SETTLED_HISTORY = 20_000
TARGET_LOW, TARGET_HIGH = 0.8, 1.2

# Job ids are UUIDs (the jobs table admits nothing else), made from md5 of a name.
# $1 unsettled jobs, JOBS_PER_PROJECT per project, first seen evenly over the last 8 hours.
UNSETTLED_SQL = """
insert into reconciler.jobs (project_id, job_id, first_seen_at, next_check_at, attempts,
                             last_error)
select ('00000000-0000-4000-8000-' || lpad(to_hex(i / $2), 12, '0'))::uuid,
       md5('job-' || i)::uuid::text,
       now() - make_interval(secs => 8 * 3600.0 * i / $1),
       now() + interval '1 minute', i % 7,
       case when i % 3 = 0 then 'Runware: still processing' end
  from generate_series(0, $1 - 1) as g(i)
"""
# The same on both sides: settled history, failures of the last 24 h, parked results ($1 rows each).
FIXED_STATE_SQL = (
    """
insert into reconciler.jobs (project_id, job_id, first_seen_at, next_check_at, attempts,
                             settled_at, outcome)
select ('10000000-0000-4000-8000-' || lpad(to_hex(i / 20), 12, '0'))::uuid,
       md5('settled-' || i)::uuid::text, now() - interval '3 days', now() - interval '3 days', 3,
       now() - interval '2 days', 'https://vm.runware.ai/video/' || i || '.mp4'
  from generate_series(0, $1 - 1) as g(i)
""",
    """
insert into reconciler.jobs (project_id, job_id, first_seen_at, next_check_at, attempts,
                             settled_at, outcome, last_error)
select ('20000000-0000-4000-8000-' || lpad(to_hex(i / 20), 12, '0'))::uuid,
       md5('failed-' || i)::uuid::text, now() - interval '5 hours', now(), 9,
       now() - make_interval(secs => 20 * 3600.0 * i / $1), 'failed',
       'Runware: reason number ' || (i % 10)
  from generate_series(0, $1 - 1) as g(i)
""",
    """
insert into reconciler.parked_results (job_id, result)
select md5('parked-' || i)::uuid::text, 'failed' from generate_series(0, $1 - 1) as g(i)
""",
)


@dataclass(frozen=True)
class Sizes:
    small: int
    large: int
    reads: int


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(small=1_000, large=10_000, reads=15)
    return Sizes(small=1_000, large=100_000, reads=41)


async def _prepare(ctx: BenchContext, unsettled: int) -> str:
    dsn = await ctx.databases.create_baseline(f"w9_{unsettled}")
    await apply_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(UNSETTLED_SQL, unsettled, JOBS_PER_PROJECT)
        for statement, rows in zip(
            FIXED_STATE_SQL, (SETTLED_HISTORY, FAILURES, PARKED), strict=True
        ):
            await conn.execute(statement, rows)
        for i in range(REPLICAS):
            await conn.execute(
                "select public.reconciler_record_heartbeat($1, '0.1.0', now(), 5, 'subscribed',"
                " 10, now())",
                f"bench-replica-{i}",
            )
        await conn.execute("vacuum analyze")
        await conn.execute("checkpoint")
    finally:
        await conn.close()
    return dsn


async def _timed(store: FunctionStore, expected: int) -> float:
    started = time.perf_counter()
    overview = await read_overview(store)
    elapsed = time.perf_counter() - started
    if overview.unsettled != expected or len(overview.failures_24h) == 0:
        raise RuntimeError(f"the overview counted {overview.unsettled} unsettled, not {expected}")
    return elapsed


async def _alternate(
    small: Callable[[], Awaitable[float]], large: Callable[[], Awaitable[float]], repeats: int
) -> tuple[list[float], list[float]]:
    """small, large, large, small, …: drift and order weigh on both alike."""
    await small()  # warm caches and the prepared statement: not timed
    await large()
    times: dict[str, list[float]] = {"small": [], "large": []}
    for i in range(repeats):
        order = (("small", small), ("large", large))
        for name, read in order if i % 2 == 0 else reversed(order):
            times[name].append(await read())
    return times["small"], times["large"]


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    stores: list[FunctionStore] = []
    try:
        for unsettled in (size.small, size.large):
            ctx.say(f"W9 seeding {unsettled:,} unsettled jobs")
            stores.append(await connect_postgres_store(await _prepare(ctx, unsettled)))
        small_store, large_store = stores
        ctx.say(f"W9 {size.reads} overview reads of each database")
        small, large = await _alternate(
            lambda: _timed(small_store, size.small),
            lambda: _timed(large_store, size.large),
            size.reads,
        )
    finally:
        for store in stores:
            await store.close()
    return _outcome(size, small, large)


def _outcome(size: Sizes, small: list[float], large: list[float]) -> Outcome:
    medians = (statistics.median(small), statistics.median(large))
    large_over_small = ratio(medians[1], medians[0])
    met = TARGET_LOW <= large_over_small <= TARGET_HIGH
    labels = (f"{size.small:,}", f"{size.large:,}")
    outcome = Outcome(
        name="W9",
        title="status cost",
        params={
            "unsettled_jobs": [size.small, size.large],
            "jobs_per_project": JOBS_PER_PROJECT,
            "failures_24h": FAILURES,
            "parked_results": PARKED,
            "replicas": REPLICAS,
            "settled_history": SETTLED_HISTORY,
            "reads_each": size.reads,
        },
        figures={
            "overview_median_ms": {
                "small": rounded(medians[0] * 1000, 3),
                "large": rounded(medians[1] * 1000, 3),
            },
            "overview_ms": {
                "small": [round(t * 1000, 3) for t in small],
                "large": [round(t * 1000, 3) for t in large],
            },
        },
        ratios={"large_over_small": rounded(large_over_small, 3)},
        targets={"large_over_small_between": [TARGET_LOW, TARGET_HIGH], "met": met},
        notes=[
            "overview = read_overview() through the Postgres store (two SQL calls: replicas, "
            "age buckets, 20 oldest, failures and reasons of 24 h, parked count; then the "
            "archive backlog); medians of alternated reads",
        ],
    )
    outcome.rows = [
        Row(f"status, {labels[0]} unsettled jobs", fmt(medians[0] * 1000, " ms", 2)),
        Row(
            f"status, {labels[1]} vs {labels[0]} unsettled jobs",
            fmt(medians[1] * 1000, " ms", 2),
            fmt(medians[0] * 1000, " ms", 2),
            fmt_ratio(large_over_small),
            f"{TARGET_LOW:.1f}x to {TARGET_HIGH:.1f}x",
            met,
        ),
    ]
    return outcome
