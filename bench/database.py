"""Throw-away databases for the workloads, cloned from one migrated template, and the write log
that lets a workload count writes of `projects` rows and time each clip's write exactly.

Why triggers and not `pg_stat_user_tables.n_tup_upd`: other backends flush their statistics
only when idle and at most once a second (up to 10 s later), and `pg_stat_force_next_flush()`
affects only the calling backend. A row-level AFTER UPDATE trigger sees every write of a
`projects` row, whoever makes it, inside the writing transaction, with `clock_timestamp()`.
It costs both sides of a comparison the same, and W2 (throughput) does not install it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from reconciler.local.localpg import LocalPostgres
from reconciler.migrations import apply_baseline, apply_migrations

TEMPLATE = "bench_template"

# A connection of our own or one borrowed from a pool.
Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

WRITE_LOG_SQL = """
create schema if not exists bench;
create table bench.row_writes (
    project_id uuid not null,
    at timestamptz not null
);
-- One row per clip whose value a write changed, with the value before and after.
create table bench.clip_writes (
    job_id text not null,
    project_id uuid not null,
    old_value text,
    new_value text,
    at timestamptz not null
);
create table bench.bookkeeping_writes (
    table_name text not null,
    op text not null,
    rows bigint not null
);

create function bench.log_project_write() returns trigger
language plpgsql as $$
begin
    insert into bench.row_writes (project_id, at) values (new.id, clock_timestamp());
    insert into bench.clip_writes (job_id, project_id, old_value, new_value, at)
    select n.key, new.id, old.clips ->> n.key, n.value #>> '{}', clock_timestamp()
      from jsonb_each(case when jsonb_typeof(new.clips) = 'object'
                           then new.clips else '{}'::jsonb end) n
     where (old.clips -> n.key) is distinct from n.value;
    return null;
end;
$$;
create trigger bench_log_project_write
    after update on public.projects
    for each row execute function bench.log_project_write();

create function bench.count_rows() returns trigger
language plpgsql as $$
begin
    insert into bench.bookkeeping_writes (table_name, op, rows)
    select tg_table_schema || '.' || tg_table_name, tg_op, count(*) from changed;
    return null;
end;
$$;
create trigger bench_count_jobs_insert after insert on reconciler.jobs
    referencing new table as changed for each statement execute function bench.count_rows();
create trigger bench_count_jobs_update after update on reconciler.jobs
    referencing new table as changed for each statement execute function bench.count_rows();
create trigger bench_count_parked_insert after insert on reconciler.parked_results
    referencing new table as changed for each statement execute function bench.count_rows();
"""


@dataclass
class BenchDatabases:
    server: LocalPostgres

    def __post_init__(self) -> None:
        self._counter = itertools.count()

    async def prepare_template(self) -> None:
        admin = await asyncpg.connect(self.server.dsn())
        try:
            await admin.execute(f"create database {TEMPLATE}")
        finally:
            await admin.close()
        await apply_baseline(self.server.dsn(TEMPLATE))
        await apply_migrations(self.server.dsn(TEMPLATE))

    async def create(self, label: str, *, write_log: bool = False) -> str:
        """A fresh migrated database; its DSN. `write_log` installs the triggers above."""
        name = f"bench_{label}_{next(self._counter)}"
        admin = await asyncpg.connect(self.server.dsn())
        try:
            await admin.execute(f"create database {name} template {TEMPLATE}")
        finally:
            await admin.close()
        dsn = self.server.dsn(name)
        if write_log:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(WRITE_LOG_SQL)
            finally:
                await conn.close()
        return dsn

    async def create_baseline(self, label: str) -> str:
        """A fresh database with only the Supabase-shaped baseline (no migration): for
        workloads that seed before migrating, or compare with a database we never touched."""
        name = f"bench_{label}_{next(self._counter)}"
        admin = await asyncpg.connect(self.server.dsn())
        try:
            await admin.execute(f"create database {name}")
        finally:
            await admin.close()
        dsn = self.server.dsn(name)
        await apply_baseline(dsn)
        return dsn

    async def clone(self, source_dsn: str, label: str) -> str:
        """A byte-for-byte copy of another database (nobody may be connected to it): copies
        start physically identical, so a comparison between them measures only what differs
        afterwards. Returns the copy's DSN."""
        source = source_dsn.rsplit("/", 1)[1]
        name = f"bench_{label}_{next(self._counter)}"
        admin = await asyncpg.connect(self.server.dsn())
        try:
            await admin.execute(f"create database {name} template {source}")
        finally:
            await admin.close()
        return self.server.dsn(name)

    async def version(self) -> str:
        conn = await asyncpg.connect(self.server.dsn())
        try:
            version: str = await conn.fetchval("select version()")
            return version
        finally:
            await conn.close()


def new_job_ids(count: int) -> list[str]:
    """Runware task UUIDs are client-made UUIDv4s."""
    return [str(uuid.uuid4()) for _ in range(count)]


async def insert_projects(conn: Conn, projects: Iterable[tuple[uuid.UUID, Sequence[str]]]) -> None:
    """The app's own inserts: one row per project, every listed job `"pending"`."""
    rows = [(pid, json.dumps(dict.fromkeys(jobs, "pending"))) for pid, jobs in projects]
    await conn.executemany(
        "insert into public.projects (id, clips) values ($1, $2::jsonb)",
        rows,
    )


async def pending_clips(conn: Conn) -> int:
    count: int = await conn.fetchval(
        "select count(*) from public.projects p, jsonb_each(p.clips) e"
        " where e.value = '\"pending\"'::jsonb"
    )
    return count


@dataclass(frozen=True)
class WriteLog:
    """What the write-log triggers recorded."""

    row_writes: int
    clip_changes: int
    # Clips changed more than once, or changed from something other than "pending".
    clips_changed_twice: int
    clips_changed_from_settled: int
    bookkeeping_rows: int
    # job id -> when its value left "pending" (epoch seconds, the database's clock)
    settled_at: dict[str, float]


async def read_write_log(conn: Conn, project_ids: Sequence[uuid.UUID] | None = None) -> WriteLog:
    where = "" if project_ids is None else " where project_id = any($1::uuid[])"
    args: list[object] = [] if project_ids is None else [list(project_ids)]
    # `where` is one of two constants above, never input.
    row_writes: int = await conn.fetchval(
        f"select count(*) from bench.row_writes{where}",  # noqa: S608
        *args,
    )
    changes = await conn.fetch(
        "select job_id, old_value, extract(epoch from at)::float8 as at"  # noqa: S608
        f" from bench.clip_writes{where}",
        *args,
    )
    bookkeeping: int = await conn.fetchval(
        "select coalesce(sum(rows), 0)::bigint from bench.bookkeeping_writes"
    )
    seen: dict[str, int] = {}
    settled_at: dict[str, float] = {}
    from_settled = 0
    for change in changes:
        job_id = change["job_id"]
        seen[job_id] = seen.get(job_id, 0) + 1
        if change["old_value"] == "pending":
            settled_at.setdefault(job_id, change["at"])
        elif change["old_value"] is not None:
            from_settled += 1
    return WriteLog(
        row_writes=row_writes,
        clip_changes=len(changes),
        clips_changed_twice=sum(1 for n in seen.values() if n > 1),
        clips_changed_from_settled=from_settled,
        bookkeeping_rows=bookkeeping,
        settled_at=settled_at,
    )
