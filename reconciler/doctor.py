"""`reconciler doctor`: a pre-flight check of everything the service needs, one finding per item.

Each finding says what was found, or what is wrong and what to do about it. The checks reuse
the mechanisms the service and `migrate` use (the shape check, the pooler probe, the Runware
client, the Storage client), so that `doctor` and the service can never disagree.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg
import httpx

from reconciler.clips import CheckError
from reconciler.config import ConfigError, Settings, load_settings
from reconciler.migrations import RECORD_TABLE, check_shape, migration_files
from reconciler.ports import RunwareCredentialsRejected
from reconciler.runware.client import RunwareClient
from reconciler.store.calls import CATALOGUE
from reconciler.store.postgres import names_the_transaction_pooler_port, uses_transaction_pooling

# The bound: an unreachable database is reported after this long, not after the
# driver's 60 s.
CONNECT_TIMEOUT_SECONDS = 10.0
_HTTP_TIMEOUT_SECONDS = 10.0
MIGRATE_FIX = "run `reconciler migrate`"


@dataclass(frozen=True)
class Finding:
    item: str
    ok: bool
    # What was found when ok; what is wrong and the fix otherwise.
    detail: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.item}: {self.detail}"


def database_host(dsn: str) -> str:
    """host:port/database of a DATABASE_URL, never its user or password."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "(a DATABASE_URL that cannot be parsed)"
    database = parts.path.lstrip("/") or "postgres"
    return f"{host}:{port}/{database}"


async def diagnose(environ: Mapping[str, str]) -> list[Finding]:
    """Every finding, in the order an adopter fixes them."""
    try:
        settings = load_settings(environ, serving=True)
    except ConfigError as error:
        return [Finding("settings", False, str(error))]
    findings = [Finding("settings", True, f"{settings.transport} transport, feed {settings.feed}")]
    findings.extend(await _database_findings(settings))
    findings.append(await _runware_finding(settings))
    if settings.archive.enabled:
        findings.append(await _bucket_finding(settings))
    return findings


async def _database_findings(settings: Settings) -> list[Finding]:
    if settings.database_url is None:
        return [
            Finding(
                "database",
                False,
                "DATABASE_URL is not set, so the schema cannot be checked; set it to the"
                " project's connection string (Supabase: Project Settings → Database)",
            )
        ]
    dsn = settings.database_url
    host = database_host(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS, statement_cache_size=0)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        reason = (
            f"no answer within {CONNECT_TIMEOUT_SECONDS:.0f} s"
            if isinstance(error, TimeoutError)
            else " ".join(f"{type(error).__name__}: {error}".split())
        )
        return [
            Finding(
                "database",
                False,
                f"{host} unreachable ({reason}); check DATABASE_URL's host, port, user and"
                " password, and that this machine may connect to it",
            )
        ]
    try:
        findings = [Finding("database", True, f"{host} reachable")]
        problem = await check_shape(conn)
        findings.append(
            Finding("projects", True, "id uuid primary key, clips jsonb")
            if problem is None
            else Finding("projects", False, problem)
        )
        findings.append(await _migrations_finding(conn))
        findings.append(await _publication_finding(conn, settings))
    finally:
        await conn.close()
    findings.append(await _pooler_finding(dsn))
    return findings


async def _missing_functions(conn: asyncpg.Connection) -> list[str]:
    """The catalogued functions (reconciler/store/calls.py: every call this version makes) that
    the database lacks, or has with other arguments."""
    rows = await conn.fetch(
        "select p.proname, coalesce(p.proargnames, '{}') as names,"
        " array(select format_type(a.type, null)"
        "       from unnest(p.proargtypes::oid[]) with ordinality as a(type, position)"
        "       order by a.position) as types"
        " from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'public' and p.proname = any($1::text[])",
        [function.name for function in CATALOGUE],
    )
    present = {(row["proname"], tuple(row["names"]), tuple(row["types"])) for row in rows}
    return [
        function.name
        for function in CATALOGUE
        if (function.name, function.argument_names, function.argument_types) not in present
    ]


async def _recorded_migrations(conn: asyncpg.Connection) -> tuple[set[str], set[str]] | None:
    """(files recorded, names only our runner knows) from `reconciler migrate`'s records and the
    Supabase CLI's (`supabase db push` records a file by its timestamp version); None when
    neither kind of record exists (the files were applied some other way, e.g. psql)."""
    ours: set[str] = set()
    versions: set[str] = set()
    has_ours = await conn.fetchval(f"select to_regclass('{RECORD_TABLE}') is not null")
    if has_ours:
        rows = await conn.fetch("select name from reconciler.schema_migrations")
        ours = {row["name"] for row in rows}
    has_cli = await conn.fetchval(
        "select to_regclass('supabase_migrations.schema_migrations') is not null"
    )
    if has_cli:
        versions = {
            str(row["version"])
            for row in await conn.fetch("select version from supabase_migrations.schema_migrations")
        }
    if not has_ours and not has_cli:
        return None
    files = {path.name for path in migration_files()}
    recorded = ours | {name for name in files if name.split("_", 1)[0] in versions}
    return recorded, ours - files


async def _migrations_finding(conn: asyncpg.Connection) -> Finding:
    files = [path.name for path in migration_files()]
    # The functions are the truth (they are what the service calls), whoever applied the files
    # and whatever they recorded; the records add which file is missing, and what is too new.
    missing_functions = await _missing_functions(conn)
    if missing_functions:
        return Finding(
            "migrations",
            False,
            f"{len(missing_functions)} of the {len(CATALOGUE)} functions this version calls are"
            f" missing or differ (first: {missing_functions[0]}); {MIGRATE_FIX}"
            " (or `supabase db push`)",
        )
    records = await _recorded_migrations(conn)
    if records is None:
        return Finding(
            "migrations",
            True,
            f"every function this version calls is present (no record of the {len(files)}"
            " files: applied without `reconciler migrate` or `supabase db push`)",
        )
    applied, unknown = records
    missing = [name for name in files if name not in applied]
    if missing:
        return Finding(
            "migrations",
            False,
            f"{len(missing)} of {len(files)} not applied (first: {missing[0]}); {MIGRATE_FIX}",
        )
    if unknown:
        return Finding(
            "migrations",
            False,
            f"the database has {len(unknown)} migration(s) this version does not know"
            f" (last: {sorted(unknown)[-1]}); upgrade the reconciler to the version that"
            " applied them",
        )
    return Finding("migrations", True, f"all {len(files)} applied, none unknown")


async def _publication_finding(conn: asyncpg.Connection, settings: Settings) -> Finding:
    if settings.feed != "realtime":
        return Finding(
            "realtime",
            True,
            "not used (feed off): the app's changes reach the service through the outbox",
        )
    included = await conn.fetchval(
        "select exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime'"
        " and schemaname = 'public' and tablename = 'projects')"
    )
    if included:
        return Finding("realtime", True, "publication supabase_realtime includes projects")
    return Finding(
        "realtime",
        False,
        "publication supabase_realtime does not include projects; run"
        " `alter publication supabase_realtime add table public.projects` (or enable realtime"
        " for projects in Supabase's table editor); without it changes are seen later, through"
        " the outbox",
    )


async def _pooler_finding(dsn: str) -> Finding:
    try:
        pooled = names_the_transaction_pooler_port(dsn) or await uses_transaction_pooling(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return Finding("pooler", False, f"the probe failed ({type(error).__name__})")
    if pooled:
        return Finding(
            "pooler",
            True,
            "transaction-mode pooler: works, prepared-statement cache off; a direct or"
            " session-mode connection (port 5432) saves a round trip per call",
        )
    return Finding("pooler", True, "direct or session-mode connection")


async def _runware_finding(settings: Settings) -> Finding:
    url = str(settings.runware_api_url)
    # The cheapest call there is: the status of a task that does not exist. An accepted key
    # gets "not found"; a rejected one an HTTP 401/402/403.
    async with RunwareClient(
        url, settings.runware_api_key or "", max_retries=0, timeout_seconds=_HTTP_TIMEOUT_SECONDS
    ) as client:
        try:
            statuses = await client.get_statuses([str(uuid.uuid4())])
        except RunwareCredentialsRejected as rejected:
            return Finding("runware", False, f"{rejected}; check RUNWARE_API_KEY")
    status = next(iter(statuses.values()))
    if isinstance(status, CheckError):
        return Finding("runware", False, f"{url}: {status.message}; check RUNWARE_API_URL")
    return Finding("runware", True, f"{url} accepted the key")


async def _bucket_finding(settings: Settings) -> Finding:
    from reconciler.archive.transfer import StorageUploader, TransferFailed

    bucket = settings.archive.bucket
    assert bucket is not None  # the settings require it with archiving on
    assert settings.supabase_url is not None
    assert settings.supabase_service_role_key is not None
    async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT_SECONDS) as http:
        storage = StorageUploader(
            http, str(settings.supabase_url), settings.supabase_service_role_key
        )
        try:
            await storage.check_bucket(bucket)
        except TransferFailed as error:
            return Finding(
                "storage",
                False,
                f"{error}; create it (public) in Supabase Storage or set RECONCILER_ARCHIVE_BUCKET",
            )
    return Finding("storage", True, f"bucket {bucket!r} present")


async def schema_problem(dsn: str) -> str | None:
    """What keeps the service from running on this database's schema (migrations missing, or
    from a later version), with the fix; None when it fits or when the database does not answer
    (readiness reports that on its own)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_SECONDS, statement_cache_size=0)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return None
    try:
        finding = await _migrations_finding(conn)
    finally:
        await conn.close()
    return None if finding.ok else f"migrations: {finding.detail}"


def startup_line(settings: Settings) -> str:
    """What `serve` says first: what it runs and against what, with no secret in it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        running = version("clip-reconciler")
    except PackageNotFoundError:  # run from a checkout that was never installed
        running = "unknown"
    database = (
        database_host(settings.database_url)
        if settings.database_url is not None
        else f"{settings.supabase_url} (PostgREST)"
    )
    archive = f"on (bucket {settings.archive.bucket})" if settings.archive.enabled else "off"
    return (
        f"clip-reconciler {running}: transport {settings.transport}, database {database},"
        f" Runware {settings.runware_api_url}, archiving {archive}, feed {settings.feed}"
    )


def run(environ: Mapping[str, str]) -> tuple[bool, list[Finding]]:
    findings = asyncio.run(diagnose(environ))
    return all(f.ok for f in findings), findings
