"""W7 sweep cost: a full sweep at 10,000 and at 100,000 projects, 100 pending jobs in each.

A sweep should cost in proportion to what is pending, not to the size of `projects`. Two
databases with every migration hold 10,000 and 100,000 projects of 20 clips: exactly 100
pending clips in all (2 in each of 50 projects, spread over the id range), the rest settled
(video URLs, every tenth "failed"). The migrations are applied after seeding, so v2's
back-fill tracks the pending clips as it would on an existing app's database; every settled
clip also gets a settled row in `reconciler.jobs`, as if all were settled within retention,
so the sweep's walk of unsettled rows is timed next to a large settled history.

The sweep is the service's own: `Engine.sweep_once()` through the Postgres store (drain the
outbox, page through `reconciler_projects_with_pending`, `reconciler_read_project` for each).
It changes nothing here (every job is already tracked), so it can be repeated: sweeps of the
two databases alternate (small, large, large, small, …) and the medians are compared.

For comparison, the v0.1 way on the same databases: v0.1's `reconciler_projects_with_pending`
scanned every project with jsonb_path_exists; its query is run here as it was, paged by 500,
then the same `reconciler_read_project` call for each project found.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt, fmt_ratio
from bench.stats import ratio, rounded
from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.engine import Engine, EnginePolicy
from reconciler.migrations import apply_migrations
from reconciler.runware.client import RunwareClient
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store

CLIPS_PER_PROJECT = 20
PENDING_JOBS = 100
PENDING_PER_PROJECT = 2
PENDING_PROJECTS = PENDING_JOBS // PENDING_PER_PROJECT
TARGET_RATIO = 1.2

# Projects whose number is a multiple of $3 get $4 pending clips; generate_series order is
# unrelated to the random ids, so they are spread over the id range.
SEED_SQL = """
insert into public.projects (id, name, clips)
select gen_random_uuid(), 'project ' || p.i,
       (select jsonb_object_agg(gen_random_uuid()::text,
                  case when p.i % $3 = 0 and c.j <= $4 then to_jsonb('pending'::text)
                       when c.j % 10 = 0 then to_jsonb('failed'::text)
                       else to_jsonb('https://vm.runware.ai/video/os/a18d05/ws/2/vi/'
                                     || gen_random_uuid()::text || '.mp4') end)
          from generate_series(1, $2) as c(j)
         -- Refers to p.i: an uncorrelated subquery would run once, giving every project
         -- the same keys.
         where p.i > 0)
  from generate_series(1, $1) as p(i)
"""
# Settled history: what reconciler.jobs holds when every settled clip settled within retention.
SETTLED_HISTORY_SQL = """
insert into reconciler.jobs (project_id, job_id, first_seen_at, next_check_at, attempts,
                             settled_at, outcome)
select p.id, e.key, now() - interval '2 days', now() - interval '2 days', 3,
       now() - interval '1 day', e.value
  from public.projects p, jsonb_each_text(p.clips) e
 where e.value <> 'pending'
"""
# v0.1's reconciler_projects_with_pending, verbatim but for the parameters' names.
V0_1_PAGE_SQL = """
select p.id from public.projects p
 where ($1::uuid is null or p.id > $1)
   and jsonb_typeof(p.clips) = 'object'
   and jsonb_path_exists(p.clips, '$.* ? (@ == "pending")')
 order by p.id
 limit greatest($2::integer, 0)
"""


@dataclass(frozen=True)
class Sizes:
    small: int
    large: int
    sweeps: int
    sweeps_0_1: int


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(small=1_000, large=10_000, sweeps=9, sweeps_0_1=3)
    return Sizes(small=10_000, large=100_000, sweeps=31, sweeps_0_1=7)


async def _prepare(ctx: BenchContext, projects: int) -> str:
    dsn = await ctx.databases.create_baseline(f"w7_{projects}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            SEED_SQL,
            projects,
            CLIPS_PER_PROJECT,
            projects // PENDING_PROJECTS,
            PENDING_PER_PROJECT,
        )
        await apply_migrations(dsn)
        await conn.execute(SETTLED_HISTORY_SQL)
        unsettled = await conn.fetchrow(
            "select count(*) as jobs, count(distinct project_id) as projects"
            " from reconciler.jobs where settled_at is null"
        )
        assert unsettled is not None
        outbox = await conn.fetchval("select count(*) from reconciler.changed_projects")
        await conn.execute("vacuum analyze")
        await conn.execute("checkpoint")
    finally:
        await conn.close()
    if (unsettled["jobs"], unsettled["projects"], outbox) != (PENDING_JOBS, PENDING_PROJECTS, 0):
        raise RuntimeError(
            f"seeding left {unsettled['jobs']} pending jobs in {unsettled['projects']} "
            f"projects and {outbox} outbox rows"
        )
    return dsn


@dataclass
class Side:
    """One database, with the service's store and engine, and a plain connection."""

    projects: int
    store: FunctionStore
    engine: Engine
    conn: asyncpg.Connection

    async def sweep(self) -> int:
        return await self.engine.sweep_once()

    async def sweep_0_1(self) -> int:
        """v0.1's sweep: the scan of every project, then the same read of each found."""
        policy = EnginePolicy()
        delay = CheckPolicy().first_check_delay_seconds
        after: uuid.UUID | None = None
        count = 0
        while True:
            page = [r["id"] for r in await self.conn.fetch(V0_1_PAGE_SQL, after, 500)]
            if not page:
                return count
            for project_id in page:
                await self.store.sync_project(project_id, delay, policy.sweep_spread_seconds)
            count += len(page)
            after = page[-1]


async def _timed(sweep: Callable[[], Awaitable[int]]) -> float:
    started = time.perf_counter()
    found = await sweep()
    elapsed = time.perf_counter() - started
    if found != PENDING_PROJECTS:
        raise RuntimeError(f"a sweep reconciled {found} projects, not {PENDING_PROJECTS}")
    return elapsed


async def _alternate(
    small: Callable[[], Awaitable[int]], large: Callable[[], Awaitable[int]], repeats: int
) -> tuple[list[float], list[float]]:
    """small, large, large, small, …: drift and order weigh on both alike."""
    await small()  # warm caches and prepared statements: not timed
    await large()
    times: dict[str, list[float]] = {"small": [], "large": []}
    for i in range(repeats):
        order = (("small", small), ("large", large))
        for name, sweep in order if i % 2 == 0 else reversed(order):
            times[name].append(await _timed(sweep))
    return times["small"], times["large"]


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    sides: list[Side] = []
    runware = RunwareClient("http://127.0.0.1:9/v1", "unused-in-w7", max_retries=0)
    try:
        for projects in (size.small, size.large):
            ctx.say(f"W7 seeding {projects:,} projects, {PENDING_JOBS} pending jobs")
            dsn = await _prepare(ctx, projects)
            store = await connect_postgres_store(dsn)
            # A sweep never asks Runware: the client only fills the checker's signature.
            engine = Engine(
                store, ClipChecker(store, runware, CheckPolicy()), policy=EnginePolicy()
            )
            sides.append(Side(projects, store, engine, await asyncpg.connect(dsn)))
        small, large = sides
        ctx.say(f"W7 {size.sweeps} sweeps of each database")
        now = await _alternate(small.sweep, large.sweep, size.sweeps)
        ctx.say(f"W7 {size.sweeps_0_1} v0.1-style sweeps of each database")
        old = await _alternate(small.sweep_0_1, large.sweep_0_1, size.sweeps_0_1)
        for side in sides:
            left = await side.conn.fetchval(
                "select count(*) from reconciler.jobs where settled_at is null"
            )
            if left != PENDING_JOBS:
                raise RuntimeError(f"sweeps changed the pending jobs: {left} left")
    finally:
        for side in sides:
            await side.conn.close()
            await side.store.close()
        await runware.aclose()
    return _outcome(size, now, old)


def _outcome(
    size: Sizes, now: tuple[list[float], list[float]], old: tuple[list[float], list[float]]
) -> Outcome:
    medians = {
        "now": tuple(statistics.median(t) for t in now),
        "v0_1": tuple(statistics.median(t) for t in old),
    }
    ratios = {k: ratio(large, small) for k, (small, large) in medians.items()}
    met = ratios["now"] <= TARGET_RATIO
    labels = (f"{size.small:,}", f"{size.large:,}")
    outcome = Outcome(
        name="W7",
        title="sweep cost",
        params={
            "projects": [size.small, size.large],
            "clips_per_project": CLIPS_PER_PROJECT,
            "pending_jobs": PENDING_JOBS,
            "pending_projects": PENDING_PROJECTS,
            "settled_job_rows": [
                n * CLIPS_PER_PROJECT - PENDING_JOBS for n in (size.small, size.large)
            ],
            "sweeps_each": size.sweeps,
            "sweeps_each_0_1": size.sweeps_0_1,
            "page_size": EnginePolicy().sweep_page_size,
        },
        figures={
            "sweep_median_ms": {
                "small": rounded(medians["now"][0] * 1000, 2),
                "large": rounded(medians["now"][1] * 1000, 2),
            },
            "sweep_ms": {
                "small": [round(t * 1000, 2) for t in now[0]],
                "large": [round(t * 1000, 2) for t in now[1]],
            },
            "sweep_0_1_median_ms": {
                "small": rounded(medians["v0_1"][0] * 1000, 1),
                "large": rounded(medians["v0_1"][1] * 1000, 1),
            },
            "sweep_0_1_ms": {
                "small": [round(t * 1000, 1) for t in old[0]],
                "large": [round(t * 1000, 1) for t in old[1]],
            },
        },
        ratios={
            "large_over_small": rounded(ratios["now"], 3),
            "large_over_small_0_1": rounded(ratios["v0_1"], 3),
        },
        targets={"large_over_small_at_most": TARGET_RATIO, "met": met},
        notes=[
            "sweep = Engine.sweep_once() through the Postgres store (one empty outbox drain, "
            f"pages of pending projects, one read per project: {PENDING_PROJECTS} here); "
            "v0.1 = its projects_with_pending query run directly (a scan of every project), "
            "then the same reads. Times are medians of alternated sweeps",
        ],
    )
    outcome.rows = [
        Row(f"sweep, {labels[0]} projects", fmt(medians["now"][0] * 1000, " ms", 2)),
        Row(
            f"sweep, {labels[1]} vs {labels[0]} projects",
            fmt(medians["now"][1] * 1000, " ms", 2),
            fmt(medians["now"][0] * 1000, " ms", 2),
            fmt_ratio(ratios["now"]),
            f"≤ {TARGET_RATIO:.1f}x",
            met,
        ),
        Row(
            f"v0.1 sweep, {labels[1]} vs {labels[0]} projects",
            fmt(medians["v0_1"][1] * 1000, " ms"),
            fmt(medians["v0_1"][0] * 1000, " ms"),
            fmt_ratio(ratios["v0_1"]),
        ),
    ]
    return outcome
