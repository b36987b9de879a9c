"""W12 install on a live table: the app's writes to `projects` while `reconciler migrate` runs
(issue 19, "Done when").

300,000 projects x 10 clips, 4 app writers throughout (two add a pending clip to a random
project, two edit another column of one), each write timed on its own. Two runs on copies of
one seeded database that has none of our schema:

  * fresh install: `apply_migrations` (what `reconciler migrate` calls) from an empty schema;
  * upgrade from v0.1: the released v0.1 file applied first with the writers stopped (that cost
    was paid when v0.1 was installed), then the writers start and `apply_migrations` applies
    the rest.

Each run reports the writes' p99 latency before (the writers alone, for a few seconds) and
during the migration, and the longest single write: the stall an app sees while a statement
holds a lock that blocks writes to `projects`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt
from bench.stats import percentile, rounded
from reconciler.migrations import apply_migrations, migrations_dir

TARGET_STALL_SECONDS = 1.0
WRITERS = 4
CLIPS_PER_PROJECT = 10
RELEASED_V0_1 = "20261124000000_clip_reconciler.sql"
_SEED = 12

SEED_SQL = """
insert into public.projects (id, name, clips)
select gen_random_uuid(), 'project ' || s,
       (select jsonb_object_agg(gen_random_uuid()::text,
                                'https://vm.runware.ai/video/' || s || '-' || c || '.mp4')
          from generate_series(1, $2) c where s > 0)
  from generate_series(1, $1) s
"""


@dataclass(frozen=True)
class Sizes:
    projects: int
    before_seconds: float


def sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(3_000, 1.0)
    return Sizes(300_000, 5.0)


def released_v0_1() -> Path:
    """v0.1's file as released (kept byte for byte: in the migrations, or among the tests'
    fixtures once fresh installs no longer apply it)."""
    here = migrations_dir() / RELEASED_V0_1
    if here.is_file():
        return here
    root = Path(__file__).resolve().parent.parent
    found = sorted((root / "tests").rglob(RELEASED_V0_1))
    if not found:
        raise FileNotFoundError(f"{RELEASED_V0_1} not found")
    return found[0]


@dataclass
class Writes:
    """(started, seconds) per write, on the monotonic clock."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def within(self, start: float, end: float) -> list[float]:
        return [took for began, took in self.samples if start <= began < end]

    def overlapping(self, start: float, end: float) -> list[float]:
        return [took for began, took in self.samples if began < end and began + took > start]


async def _writer(
    dsn: str, adds: bool, ids: list[uuid.UUID], stop: asyncio.Event, writes: Writes, seed: int
) -> None:
    rng = random.Random(seed)
    conn = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            project = rng.choice(ids)
            began = time.monotonic()
            try:
                if adds:
                    await conn.execute(
                        "update public.projects set clips = clips || jsonb_build_object($2::text,"
                        " 'pending') where id = $1",
                        project,
                        str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    )
                else:
                    await conn.execute(
                        "update public.projects set name = $2, updated_at = now() where id = $1",
                        project,
                        f"renamed {rng.random():.6f}",
                    )
            except asyncpg.PostgresError as exc:  # counted; the run goes on
                writes.failures.append(f"{type(exc).__name__}: {exc}")
            writes.samples.append((began, time.monotonic() - began))
    finally:
        await conn.close()


@dataclass(frozen=True)
class Phase:
    label: str
    migrate_seconds: float
    before_p99_ms: float
    during_p99_ms: float
    longest_write_s: float
    writes_before: int
    writes_during: int
    failures: int
    applied: int

    def as_json(self) -> dict[str, object]:
        return {
            "migrate_seconds": rounded(self.migrate_seconds, 2),
            "write_p99_before_ms": rounded(self.before_p99_ms, 1),
            "write_p99_during_ms": rounded(self.during_p99_ms, 1),
            "longest_write_during_seconds": rounded(self.longest_write_s, 3),
            "writes_before": self.writes_before,
            "writes_during": self.writes_during,
            "write_failures": self.failures,
            "files_applied": self.applied,
        }


async def _migrate_under_writers(
    ctx: BenchContext, label: str, dsn: str, ids: list[uuid.UUID], size: Sizes
) -> Phase:
    stop = asyncio.Event()
    writes = Writes()
    tasks = [
        asyncio.create_task(_writer(dsn, n % 2 == 0, ids, stop, writes, _SEED + n))
        for n in range(WRITERS)
    ]
    try:
        started = time.monotonic()
        await asyncio.sleep(size.before_seconds)  # the writers alone: the "before" window
        ctx.say(f"W12 {label}: migrating under {WRITERS} writers")
        migrate_began = time.monotonic()
        applied = await apply_migrations(dsn)
        migrate_ended = time.monotonic()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    before = writes.within(started, migrate_began)
    during = writes.within(migrate_began, migrate_ended)
    overlapping = writes.overlapping(migrate_began, migrate_ended)
    return Phase(
        label=label,
        migrate_seconds=migrate_ended - migrate_began,
        before_p99_ms=percentile(before, 0.99) * 1000,
        during_p99_ms=percentile(during, 0.99) * 1000,
        longest_write_s=max(overlapping, default=0.0),
        writes_before=len(before),
        writes_during=len(during),
        failures=len(writes.failures),
        applied=len(applied),
    )


async def _seed(ctx: BenchContext, size: Sizes) -> str:
    dsn = await ctx.databases.create_baseline("w12_seed")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SEED_SQL, size.projects, CLIPS_PER_PROJECT)
        await conn.execute("vacuum analyze public.projects")
    finally:
        await conn.close()
    return dsn


async def _project_ids(dsn: str) -> list[uuid.UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("select id from public.projects order by random() limit 10000")
    finally:
        await conn.close()
    return [row["id"] for row in rows]


async def run(ctx: BenchContext) -> Outcome:
    size = sizes(ctx.quick)
    ctx.say(f"W12 seeding {size.projects:,} projects x {CLIPS_PER_PROJECT} clips")
    seed = await _seed(ctx, size)
    fresh_dsn = await ctx.databases.clone(seed, "w12_fresh")
    upgrade_dsn = await ctx.databases.clone(seed, "w12_upgrade")
    ids = await _project_ids(seed)

    fresh = await _migrate_under_writers(ctx, "fresh install", fresh_dsn, ids, size)

    ctx.say("W12 upgrade: v0.1's released file first, writers stopped")
    conn = await asyncpg.connect(upgrade_dsn)
    try:
        began = time.monotonic()
        await conn.execute(released_v0_1().read_text())
        v0_1_seconds = time.monotonic() - began
    finally:
        await conn.close()
    upgrade = await _migrate_under_writers(ctx, "upgrade from v0.1", upgrade_dsn, ids, size)
    return _outcome(size, fresh, upgrade, v0_1_seconds)


def _outcome(size: Sizes, fresh: Phase, upgrade: Phase, v0_1_seconds: float) -> Outcome:
    met = all(
        p.longest_write_s <= TARGET_STALL_SECONDS and p.failures == 0 for p in (fresh, upgrade)
    )
    outcome = Outcome(
        name="W12",
        title="live install",
        params={
            "projects": size.projects,
            "clips_per_project": CLIPS_PER_PROJECT,
            "writers": WRITERS,
            "writers_adding_a_pending_clip": WRITERS // 2,
            "before_window_seconds": size.before_seconds,
            "v0_1_applied_with_writers": "stopped",
        },
        figures={
            "fresh_install": fresh.as_json(),
            "upgrade_from_v0_1": upgrade.as_json(),
            "v0_1_file_seconds_writers_stopped": rounded(v0_1_seconds, 2),
        },
        targets={"longest_write_at_most_seconds": TARGET_STALL_SECONDS, "met": met},
        notes=[
            "writes = single-row UPDATEs of public.projects by 4 connections (2 add a pending "
            "clip, 2 rename), back to back; before = the writers alone for "
            f"{size.before_seconds:g} s; during = writes started while apply_migrations ran; "
            "longest = the longest write overlapping it",
        ],
    )
    for phase in (fresh, upgrade):
        outcome.rows.append(
            Row(
                f"{phase.label}: app writes, p99 during (before) / longest",
                f"{fmt(phase.during_p99_ms, ' ms')} / {fmt(phase.longest_write_s, ' s', 2)}",
                f"{fmt(phase.before_p99_ms, ' ms')} before; migrate "
                f"{fmt(phase.migrate_seconds, ' s')}",
                "",
                f"longest ≤ {TARGET_STALL_SECONDS:g} s",
                phase.longest_write_s <= TARGET_STALL_SECONDS and phase.failures == 0,
            )
        )
    return outcome
