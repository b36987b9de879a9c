"""Installing, upgrading and removing our SQL (`reconciler migrate`, `reconciler uninstall`).

Safe on a database that is serving users:
- A fresh install applies `supabase/install.sql`, the schema the migration files leave, in one
  transaction: no index is ever built on `projects` and `projects` is not scanned in that
  transaction. Pending clips that already exist are then back-filled a page of projects per
  short transaction (`reconciler_resync_page`), the way the service's resync does.
- Every transaction (the install file, each migration file, the uninstall file, each page of
  the back-fill) waits at most `lock_timeout` for any lock. When it times out it is rolled back
  (nothing changed), the sessions holding locks on the tables it touches are printed, and it is
  tried again after a backoff, until a total deadline: then `MigrationStalled`, nothing changed.
  So an app write queues behind our lock request for at most about the lock timeout.
- Before changing anything the database's shape is checked (`check_shape`): `projects` with a
  uuid primary key and jsonb clips, Supabase's roles and realtime publication.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from reconciler.backoff import Backoff

# Any constant works; it only has to be the same for every replica running `migrate`.
_MIGRATION_LOCK_KEY = 0x636C6970

RECORD_TABLE = "reconciler.schema_migrations"
# The install file names the last migration it holds on a line starting with this.
COVERS_PREFIX = "-- Covers the migrations up to and including: "

Say = Callable[[str], None]


class MigrationRefused(RuntimeError):
    """The database is not in a shape the reconciler can be installed on; nothing changed."""


class MigrationStalled(RuntimeError):
    """A lock stayed taken until the deadline; the step in progress was rolled back."""


# After a lock timeout: about 1 s, doubling to 15 s; the app's writes go on meanwhile.
_RETRY = Backoff(base=1.0, cap=15.0)


@dataclass(frozen=True)
class LockLimits:
    """How long one transaction waits for a lock, and how long all retries may take."""

    lock_timeout_seconds: float = 2.0
    deadline_seconds: float = 300.0
    retry: Backoff = _RETRY


# --- Where the SQL is ----------------------------------------------------------------------------


def _packaged(checkout_relative: str, packaged_name: str) -> Path:
    """`supabase/<…>` in a source checkout, else the copy packaged into the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "supabase" / checkout_relative
    if checkout.exists():
        return checkout
    return Path(str(resources.files("reconciler") / packaged_name))


def migrations_dir() -> Path:
    return _packaged("migrations", "migrations")


def install_file_path() -> Path:
    return _packaged("install.sql", "install.sql")


def migration_files(directory: Path | None = None) -> list[Path]:
    directory = directory or migrations_dir()
    files = sorted(directory.glob("*.sql"))
    if not files:
        raise FileNotFoundError(f"no migrations found in {directory}")
    return files


def install_covers(text: str) -> str:
    """The name of the last migration file the install file holds."""
    for line in text.splitlines():
        if line.startswith(COVERS_PREFIX):
            return line.removeprefix(COVERS_PREFIX).strip()
    raise ValueError(f"the install file has no line starting with {COVERS_PREFIX!r}")


def _read(path: Path) -> str:
    return path.read_text()


def baseline_sql() -> str:
    """Supabase's roles, publication and `projects` table, for plain PostgreSQL only."""
    return (resources.files("reconciler") / "sql" / "supabase_baseline.sql").read_text()


def uninstall_sql() -> str:
    """Removes every object the migrations added; `projects` rows stay as they are."""
    return _packaged("uninstall.sql", "uninstall.sql").read_text()


# The block every migration file ends with (least privilege, invariant I8).
GRANTS_SQL = r"""
revoke all on schema reconciler from public;
revoke all on schema reconciler from anon, authenticated;
revoke all on all tables in schema reconciler from public;
revoke all on all tables in schema reconciler from anon, authenticated;
do $$
declare
    f record;
begin
    for f in
        select p.oid::regprocedure as sig, n.nspname = 'public' as exposed
          from pg_proc p
          join pg_namespace n on n.oid = p.pronamespace
         where (n.nspname = 'public' and p.proname like 'reconciler\_%')
            or n.nspname = 'reconciler'
    loop
        execute format('revoke all on function %s from public, anon, authenticated', f.sig);
        if f.exposed then
            execute format('grant execute on function %s to service_role', f.sig);
        end if;
    end loop;
    grant execute on function public.reconciler_caller_can_see_project(uuid) to authenticated;
end;
$$;
"""


# --- The shape check -----------------------------------------------------------------------------

_SUPABASE_ROLES = ("anon", "authenticated", "service_role")


async def check_shape(conn: asyncpg.Connection) -> str | None:
    """What differs from the shape the reconciler needs, in one line with what to do; None when
    the database fits. Reads the catalog only."""
    projects = await conn.fetchval("select to_regclass('public.projects')")
    if projects is None:
        return (
            "public.projects does not exist; the reconciler needs the app's table"
            " public.projects (id uuid primary key, clips jsonb) — create it first"
        )
    columns = {
        row["attname"]: row["type"]
        for row in await conn.fetch(
            "select a.attname, format_type(a.atttypid, a.atttypmod) as type"
            "  from pg_attribute a"
            " where a.attrelid = 'public.projects'::regclass and a.attnum > 0"
            "   and not a.attisdropped and a.attname in ('id', 'clips')"
        )
    }
    if "id" not in columns:
        return "public.projects has no column id; the reconciler needs id uuid primary key"
    if columns["id"] != "uuid":
        return (
            f"public.projects.id is {columns['id']}; the reconciler needs a uuid primary key"
            " (Supabase's default for new tables)"
        )
    primary_key = await conn.fetchval(
        "select array_agg(a.attname::text order by a.attname)"
        "  from pg_index i join pg_attribute a"
        "    on a.attrelid = i.indrelid and a.attnum = any (i.indkey)"
        " where i.indrelid = 'public.projects'::regclass and i.indisprimary"
    )
    if primary_key != ["id"]:
        held = (
            "no primary key" if primary_key is None else f"primary key ({', '.join(primary_key)})"
        )
        return (
            f"public.projects has {held}; the reconciler needs id as its primary key"
            " (alter table public.projects add primary key (id))"
        )
    if "clips" not in columns:
        return (
            "public.projects has no column clips; the reconciler needs clips jsonb"
            " (alter table public.projects add column clips jsonb not null default '{}')"
        )
    if columns["clips"] != "jsonb":
        return (
            f"public.projects.clips is {columns['clips']}; the reconciler needs jsonb"
            " (alter table public.projects alter column clips type jsonb using clips::jsonb)"
        )
    roles = await conn.fetch(
        "select r from unnest($1::text[]) r where not exists"
        " (select 1 from pg_roles where rolname = r)",
        list(_SUPABASE_ROLES),
    )
    if roles:
        missing = ", ".join(row["r"] for row in roles)
        return (
            f"role(s) {missing} missing; the reconciler needs Supabase's roles anon,"
            " authenticated and service_role (is this a Supabase database? on plain PostgreSQL"
            " create them first)"
        )
    if not await conn.fetchval(
        "select exists (select 1 from pg_publication where pubname = 'supabase_realtime')"
    ):
        return (
            "publication supabase_realtime missing; the reconciler needs Supabase's realtime"
            " publication (create publication supabase_realtime)"
        )
    return None


# --- Transactions that never hold the app up -----------------------------------------------------

_LOCK_NOT_AVAILABLE = "55P03"

_HOLDERS_SQL = """
select a.pid, coalesce(a.state, '?') as state,
       extract(epoch from now() - coalesce(a.xact_start, a.backend_start))::integer as age,
       left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 80) as query,
       string_agg(distinct l.mode, ', ') as modes, c.relname
  from pg_locks l
  join pg_stat_activity a on a.pid = l.pid
  join pg_class c on c.oid = l.relation
  join pg_namespace n on n.oid = c.relnamespace
 where l.granted and l.pid <> pg_backend_pid()
   and ((n.nspname = 'public' and c.relname = 'projects') or n.nspname = 'reconciler')
 group by a.pid, a.state, a.xact_start, a.backend_start, a.query, c.relname
 order by age desc
 limit 3
"""


async def _describe_holders(conn: asyncpg.Connection) -> str:
    rows = await conn.fetch(_HOLDERS_SQL)
    if not rows:
        return "the holder has gone"
    return "; ".join(
        f"pid {row['pid']} ({row['state']}, {row['age']} s) holds {row['modes']} on"
        f' {row["relname"]}, last statement "{row["query"]}"'
        for row in rows
    )


async def run_bounded(
    conn: asyncpg.Connection,
    what: str,
    work: Callable[[asyncpg.Connection], Awaitable[None]],
    limits: LockLimits,
    say: Say,
    *,
    deadline: float | None = None,
    rng: random.Random | None = None,
) -> None:
    """`work` in one transaction whose every lock wait is bounded by the lock timeout; on a
    timeout it is rolled back, who holds the lock is said, and it is tried again after a
    backoff until `deadline` (a `time.monotonic()` value; default: now + the limit)."""
    rng = rng or random.Random()
    if deadline is None:
        deadline = time.monotonic() + limits.deadline_seconds
    attempt = 0
    while True:
        try:
            async with conn.transaction():
                await conn.execute(
                    "select set_config('lock_timeout', $1, true)",
                    f"{round(limits.lock_timeout_seconds * 1000)}ms",
                )
                await work(conn)
            return
        except asyncpg.PostgresError as error:
            if error.sqlstate != _LOCK_NOT_AVAILABLE:
                raise
        holders = await _describe_holders(conn)
        left = deadline - time.monotonic()
        pause = limits.retry.delay(attempt, rng)
        attempt += 1
        if left <= pause:
            say(f"{what}: still waiting for a lock; {holders}")
            raise MigrationStalled(
                f"{what}: gave up waiting for a lock after"
                f" {limits.deadline_seconds:g} s; this step was rolled back (end the sessions"
                " above, or run again when they are done)"
            )
        say(
            f"{what}: waited {limits.lock_timeout_seconds:g} s for a lock; {holders};"
            f" rolled back, retrying in {pause:.1f} s ({left:.0f} s left)"
        )
        await asyncio.sleep(pause)


# --- migrate -------------------------------------------------------------------------------------

# Files released before `reconciler migrate` kept a record: a database that has our schema but
# no record has had exactly these applied (by an earlier `migrate` or by `supabase db push`).
_RELEASED_BEFORE_RECORDS = ("20261124000000_clip_reconciler.sql",)

_RECORD_SQL = f"""
create schema if not exists reconciler;
create table if not exists {RECORD_TABLE} (
    name       text primary key,
    applied_at timestamptz not null default now()
);
revoke all on {RECORD_TABLE} from public;
"""

# A fresh install is followed by the back-fill of pending clips that already exist, in pages of
# this many projects: a page holds row locks on its pending projects for milliseconds.
BACKFILL_PAGE = 500
# As the released v2 file back-filled: first checks spread over a minute.
_BACKFILL_SPREAD_SECONDS = 60.0


async def _record(conn: asyncpg.Connection, names: list[str]) -> None:
    await conn.executemany(
        "insert into reconciler.schema_migrations (name) values ($1) on conflict do nothing",
        [(name,) for name in names],
    )
    # On Supabase: the CLI's own record, so that `supabase db push` of these files skips them.
    columns = {
        row["column_name"]
        for row in await conn.fetch(
            "select column_name from information_schema.columns"
            " where table_schema = 'supabase_migrations' and table_name = 'schema_migrations'"
        )
    }
    if "version" not in columns:
        return
    rows = [(name.split("_", 1)[0], name.removesuffix(".sql").partition("_")[2]) for name in names]
    if "name" in columns:
        await conn.executemany(
            "insert into supabase_migrations.schema_migrations (version, name) values ($1, $2)"
            " on conflict do nothing",
            rows,
        )
    else:
        await conn.executemany(
            "insert into supabase_migrations.schema_migrations (version) values ($1)"
            " on conflict do nothing",
            [(version,) for version, _ in rows],
        )


async def _applied(conn: asyncpg.Connection) -> set[str]:
    had_records = bool(await conn.fetchval(f"select to_regclass('{RECORD_TABLE}') is not null"))
    await conn.execute(_RECORD_SQL)
    if not had_records:
        await _record(conn, list(_RELEASED_BEFORE_RECORDS))
    rows = await conn.fetch("select name from reconciler.schema_migrations")
    return {row["name"] for row in rows}


async def _backfill(conn: asyncpg.Connection, limits: LockLimits, say: Say) -> int:
    """Track the pending clips `projects` held before the install, a page per transaction.
    A project the page could not reconcile (its row kept locked past the lock timeout by an
    app transaction, a refusal) is named and left to the service's resync."""
    pages: list[dict[str, Any]] = [{"last": None, "scanned": 0, "refused": {}}]

    async def next_page(c: asyncpg.Connection) -> None:
        answer = await c.fetchval(
            "select public.reconciler_resync_page($1, $2, 0, $3)::text",
            pages[-1]["last"],
            BACKFILL_PAGE,
            _BACKFILL_SPREAD_SECONDS,
        )
        pages.append(json.loads(answer))

    while True:
        await run_bounded(conn, "back-fill of pending clips", next_page, limits, say)
        for project, reason in pages[-1]["refused"].items():
            say(
                f"back-fill: project {project} skipped ({reason}); the service's resync"
                " (or `reconciler resync`) tracks it later"
            )
        if pages[-1]["last"] is None:
            return sum(int(page["scanned"]) for page in pages)


async def apply_migrations(
    dsn: str,
    *,
    limits: LockLimits | None = None,
    say: Say = lambda line: None,
    directory: Path | None = None,
    install_file: Path | None = None,
) -> list[str]:
    """Bring the database up to the migration files; returns the names recorded now.

    No reconciler schema yet: the install file, with the files it covers recorded as applied
    (then any later file). Otherwise every file not recorded, in order, each in its own
    transaction with its record. Safe to repeat; an advisory lock keeps replicas that start
    together from interleaving. Raises MigrationRefused (shape) or MigrationStalled (a lock
    held past the deadline) with nothing changed by the step that failed.
    """
    limits = limits or LockLimits()
    files = migration_files(directory)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        problem = await check_shape(conn)
        if problem is not None:
            raise MigrationRefused(problem)
        recorded: list[str] = []
        fresh = not await conn.fetchval("select to_regclass('reconciler.jobs') is not null")
        if fresh:
            install_path = install_file or install_file_path()
            text = _read(install_path)
            covered = [f.name for f in files if f.name <= install_covers(text)]

            async def install(c: asyncpg.Connection) -> None:
                await c.execute(text)
                await c.execute(_RECORD_SQL)
                await _record(c, covered)

            await run_bounded(conn, f"install ({install_path.name})", install, limits, say)
            say(f"installed {install_path.name} (covers {len(covered)} migration files)")
            recorded += covered
        done: set[str] = set()

        async def read_records(c: asyncpg.Connection) -> None:
            done.update(await _applied(c))

        await run_bounded(conn, "records", read_records, limits, say)
        backfill = fresh
        for path in files:
            if path.name in done:
                continue
            sql, deferred = without_backfill(path.name, _read(path))
            backfill = backfill or deferred

            async def apply(c: asyncpg.Connection, name: str = path.name, sql: str = sql) -> None:
                await c.execute(sql)
                await _record(c, [name])

            await run_bounded(conn, path.name, apply, limits, say)
            say(f"applied {path.name}" + (" (its back-fill follows, in pages)" if deferred else ""))
            recorded.append(path.name)
        if backfill:
            scanned = await _backfill(conn, limits, say)
            say(f"back-filled pending clips: scanned {scanned} projects")
        return recorded
    finally:
        await conn.close()


# The released v2 file ends with a back-fill: one pass over every project, in the file's
# transaction, which holds the ACCESS EXCLUSIVE lock its first statement (dropping v0.1's
# trigger) took on `projects` — no app read or write of `projects` until the scan is over.
# `reconciler migrate` runs the file without that block and back-fills afterwards, a page of
# projects per short transaction (`_backfill`), with the same function calls. The file itself is
# unchanged (`supabase db push` runs it whole); the block is found by its exact text.
_DEFERRED_BACKFILLS = {
    "20261202000000_clip_reconciler_v2.sql": (
        "-- --- Back-fill: pending clips that exist now ",
        "-- Least privilege (I8)",
    ),
}


def without_backfill(name: str, sql: str) -> tuple[str, bool]:
    """The file's SQL without its in-transaction back-fill, and whether one was taken out."""
    if name not in _DEFERRED_BACKFILLS:
        return sql, False
    start_marker, end_marker = _DEFERRED_BACKFILLS[name]
    start = sql.find(start_marker)
    end = sql.find(end_marker, start)
    if start < 0 or end < 0:
        return sql, False
    return sql[:start] + sql[end:], True


# --- uninstall -----------------------------------------------------------------------------------


async def uninstall(
    dsn: str, *, limits: LockLimits | None = None, say: Say = lambda line: None
) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK_KEY)
        text = uninstall_sql()

        async def remove(c: asyncpg.Connection) -> None:
            await c.execute(text)

        await run_bounded(conn, "uninstall", remove, limits or LockLimits(), say)
    finally:
        await conn.close()


async def apply_baseline(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(baseline_sql())
    finally:
        await conn.close()
