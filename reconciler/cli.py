"""`reconciler` command line: serve, check, sweep, resync, migrate, archive, status, doctor,
demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import UUID

from rich.console import Console

from reconciler import service_version
from reconciler.cli_output import progress_display, render_check
from reconciler.clips import is_trackable
from reconciler.config import ConfigError, Settings, environment, load_settings
from reconciler.observability.logs import configure_logging, escape_unsafe, one_line
from reconciler.operator.terminal import terminal_json, terminal_text
from reconciler.redaction import Redactor

if TYPE_CHECKING:
    from reconciler.migrations import LockLimits
    from reconciler.operator.views import Overview, ProjectView

EXIT_CONFIG = 2

log = logging.getLogger("reconciler.cli")


def _environ() -> dict[str, str]:
    """The process environment over ./.env (config.environment)."""
    return environment(os.environ)


def _settings(*, serving: bool, runware: bool = True) -> Settings:
    settings = load_settings(_environ(), require_runware=runware, serving=serving)
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets)
    return settings


def _known_secrets() -> tuple[str, ...]:
    """What must not be printed: every configured secret when the settings load, else at least
    the DATABASE_URL password (`migrate` needs nothing else)."""
    try:
        return load_settings(_environ(), require_runware=False, serving=False).secrets
    except ConfigError:
        try:
            password = urlsplit(_environ().get("DATABASE_URL", "").strip()).password
        except ValueError:  # a malformed port; the config error masks the whole URL then
            return ()
        return (password,) if password else ()


def _print_error(message: str) -> None:
    """One line on stderr, secrets and URL passwords masked: errors carry what libraries put in
    them (a DSN, a header), and terminals, CI logs and bug reports keep it."""
    print(f"error: {escape_unsafe(one_line(Redactor(_known_secrets())(message)))}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from reconciler.app import create_app
    from reconciler.doctor import startup_line
    from reconciler.http.slow_clients import server_options

    settings = _settings(serving=True)
    log.info("%s", startup_line(settings))
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port if args.port is not None else settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        access_log=False,  # it would log the webhook token; see http/access_log.py
        log_config=None,  # uvicorn's loggers go through configure_logging's handler
        **server_options(settings),  # header deadline, connection cap
    )
    return 0


async def _run_check(settings: Settings, project_id: UUID) -> dict[str, Any]:
    from reconciler.services import open_services

    async with open_services(settings) as services:
        return await services.checker.check(project_id)


def _check(args: argparse.Namespace) -> int:
    from reconciler.checker import ProjectNotFound
    from reconciler.ports import StoreUnavailable

    try:
        project_id = UUID(args.project_id)
    except ValueError:
        print(f"error: PROJECT_ID must be a UUID, got {args.project_id!r}", file=sys.stderr)
        return EXIT_CONFIG
    settings = _settings(serving=False)
    try:
        response = asyncio.run(_run_check(settings, project_id))
    except ProjectNotFound:
        print(f"error: project {project_id} not found", file=sys.stderr)
        return 1
    except StoreUnavailable as error:
        _print_error(f"database unavailable: {error}")
        return 1
    if args.json:
        print(terminal_json(response))
    else:
        render_check(response, Console())
    # A job Runware could not be asked about (the key refused, Runware unreachable) failed on
    # our side, not the job's: scripts and CI must see it in the exit status. A key that is not
    # a task id is the app's data, never sent to Runware: shown, but no failure of the check.
    unchecked = [
        d
        for d in response.get("details", ())
        if d.get("status") == "error" and is_trackable(str(d.get("jobId")))
    ]
    if unchecked:
        _print_error(
            f"{len(unchecked)} job(s) could not be checked with Runware:"
            f" {unchecked[0].get('error') or 'no reason given'}"
        )
        return 1
    return 0


# `sweep --now` makes pending jobs due this many per call (reconciler_make_due_now).
_DUE_NOW_PAGE = 1000


async def _run_sweep(settings: Settings, console: Console, *, now: bool = False) -> None:
    from reconciler.engine import Engine
    from reconciler.services import engine_policy, open_services

    async with open_services(settings, with_feed=False) as services:
        engine = Engine(services.store, services.checker, policy=engine_policy(settings))
        with progress_display(console) as progress:
            tracking = progress.add_task("Reading projects with pending clips", total=None)
            projects = await engine.sweep_once(lambda n: progress.advance(tracking, n))
            progress.update(tracking, total=projects, completed=projects)
            if now:  # every pending job, not only the due ones
                due = progress.add_task("Making every pending job due now", total=None)
                while (made := await services.store.make_due_now(_DUE_NOW_PAGE)) > 0:
                    progress.advance(due, made)
            polling = progress.add_task("Checking due jobs with Runware", total=None)
            while (claimed := await engine.poll_once()) > 0:
                progress.advance(polling, claimed)
            progress.update(polling, total=engine.stats.jobs_polled)
        await services.store.release_leases(engine.owner)
    stats = engine.stats
    console.print(
        f"Swept {projects} projects; checked {stats.jobs_polled} jobs with Runware; "
        f"{stats.results_written} clips settled."
    )


def _sweep(args: argparse.Namespace) -> int:
    settings = _settings(serving=False).model_copy(
        update={"first_check_delay_seconds": 0.0, "sweep_spread_seconds": 0.0}
    )
    asyncio.run(_run_sweep(settings, Console(), now=bool(args.now)))
    return 0


def _database_url(why: str) -> str:
    database_url = _environ().get("DATABASE_URL", "").strip()
    if not database_url:
        raise ConfigError("DATABASE_URL", f"is required {why}")
    return database_url


def _lock_limits() -> LockLimits:
    from reconciler.config import load_only
    from reconciler.migrations import LockLimits

    settings = load_only(_environ(), "migrate_lock_timeout_seconds", "migrate_deadline_seconds")
    return LockLimits(
        lock_timeout_seconds=settings.migrate_lock_timeout_seconds,
        deadline_seconds=settings.migrate_deadline_seconds,
    )


def _say(line: str) -> None:
    print(escape_unsafe(line), flush=True)


def _migrate(_: argparse.Namespace) -> int:
    from reconciler.migrations import MigrationRefused, MigrationStalled, apply_migrations

    database_url = _database_url("to apply the migrations")
    try:
        applied = asyncio.run(apply_migrations(database_url, limits=_lock_limits(), say=_say))
    except (MigrationRefused, MigrationStalled) as error:
        _print_error(str(error))
        return 1
    if not applied:
        print("already up to date")
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from reconciler.migrations import MigrationStalled, uninstall

    if not args.yes:
        print(
            "error: this removes the reconciler's schema, functions and trigger (projects rows"
            " stay as they are); run again with --yes",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    database_url = _database_url("to uninstall")
    try:
        asyncio.run(uninstall(database_url, limits=_lock_limits(), say=_say))
    except MigrationStalled as error:
        _print_error(str(error))
        return 1
    print("removed every object the reconciler added; projects rows are untouched")
    return 0


async def _run_resync(settings: Settings, console: Console) -> int:
    from reconciler.engine import Engine
    from reconciler.services import engine_policy, open_services

    async with open_services(settings, with_feed=False) as services:
        engine = Engine(services.store, services.checker, policy=engine_policy(settings))
        with progress_display(console, bar=False) as progress:
            scanning = progress.add_task("Scanning projects", total=None)
            # An operator asked for it now: pages back to back, no pause between them.
            scanned = await engine.resync_once(
                lambda n: progress.advance(scanning, n), pause_seconds=0
            )
    console.print(
        f"Scanned {scanned} projects; {engine.stats.projects_skipped} refused by the database."
    )
    return 0


def _resync(_: argparse.Namespace) -> int:
    # Reads and writes the database only: no Runware key needed.
    return asyncio.run(_run_resync(_settings(serving=False, runware=False), Console()))


async def _read_status(
    settings: Settings, project_id: UUID | None
) -> tuple[datetime, Overview | ProjectView | None]:
    from reconciler.operator.views import read_overview, read_project_view
    from reconciler.services import connect_store

    store = await connect_store(settings)
    try:
        if project_id is None:
            overview = await read_overview(store)
            return overview.generated_at, overview
        return datetime.now(UTC), await read_project_view(store, project_id)
    finally:
        await store.close()


async def _fetch_status(
    url: str, token: str, project_id: UUID | None
) -> tuple[datetime, Overview | ProjectView | None]:
    from reconciler.operator.remote import RemoteOperatorApi

    api = RemoteOperatorApi(url, token)
    if project_id is None:
        overview = await api.overview()
        return overview.generated_at, overview
    return datetime.now(UTC), await api.project(project_id)


def _status(args: argparse.Namespace) -> int:
    from reconciler.operator.remote import ServiceRefused
    from reconciler.operator.render import render_overview, render_project
    from reconciler.operator.views import Overview
    from reconciler.ports import StoreUnavailable

    project_id: UUID | None = None
    if args.project is not None:
        try:
            project_id = UUID(args.project)
        except ValueError:
            print(f"error: --project must be a UUID, got {args.project!r}", file=sys.stderr)
            return EXIT_CONFIG
    try:
        if args.url is not None:
            environ = _environ()
            token = (
                environ.get("RECONCILER_ADMIN_TOKEN", "").strip()
                or environ.get("SUPABASE_SERVICE_ROLE_KEY", "").strip()
            )
            if not token:
                raise ConfigError("RECONCILER_ADMIN_TOKEN", "is required with --url")
            now, view = asyncio.run(_fetch_status(args.url, token, project_id))
        else:
            settings = load_settings(_environ(), require_runware=False, serving=False)
            configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets)
            now, view = asyncio.run(_read_status(settings, project_id))
    except (StoreUnavailable, ServiceRefused) as error:
        message = str(error)
        if "does not exist" in message or "Could not find the function" in message:
            # The database predates the operator view's migration.
            message += " (apply the migrations: reconciler migrate)"
        _print_error(message)
        return 1
    if view is None:
        print(f"error: project {project_id} not found", file=sys.stderr)
        return 1
    if args.json:
        print(terminal_json(view.as_json()))
    elif isinstance(view, Overview):
        render_overview(view, Console())
    else:
        render_project(view, now, Console())
    return 0


async def _run_archive(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    from reconciler.archive.paths import public_base_url, source_prefixes
    from reconciler.services import connect_store

    assert settings.supabase_url is not None
    assert settings.archive.bucket is not None
    store = await connect_store(settings)
    try:
        if args.backfill:
            # Clips already holding the bucket's public URL are archived: skipped.
            prefix = public_base_url(settings.supabase_url, settings.archive.bucket)
            # Only videos from where Runware serves them (the allow-list): URLs the app wrote
            # from elsewhere are not ours to copy.
            sources = source_prefixes(settings.allowed_url_hosts)
            scanned = queued = 0
            with progress_display(console) as progress:
                scanning = progress.add_task("Queueing finished clips for archiving", total=None)
                after: UUID | None = None
                while True:
                    page = await store.archive_backfill_page(after, args.page_size, sources, prefix)
                    scanned += page.scanned
                    queued += page.queued
                    progress.advance(scanning, page.scanned)
                    if page.last is None:
                        break
                    after = page.last
                    # Throttled: one page, then a pause, so the scan never competes with the
                    # app for long.
                    await asyncio.sleep(args.pause_seconds)
            console.print(f"Scanned {scanned} projects; queued {queued} clips for archiving.")
        stats = await store.archive_stats(by_state=True)
    finally:
        await store.close()
    by_state = ", ".join(f"{n} {state.replace('_', ' ')}" for state, n in stats.by_state.items())
    # The states are the database's words: printed as text.
    console.print(
        terminal_text(
            f"Archive: {stats.backlog} waiting (oldest {stats.oldest_age_seconds:.0f} s);"
            f" {by_state}."
            + (
                ""
                if stats.enabled
                else " Archiving is off in the database: start `serve` with it on."
            )
        )
    )
    return 0


def _at_least(parse: Callable[[str], float], minimum: float) -> Callable[[str], Any]:
    """An argparse type: a number no smaller than `minimum` (argparse words the refusal)."""

    def checked(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text!r}")
        return value

    return checked


def _archive(args: argparse.Namespace) -> int:
    settings = _settings(serving=False, runware=False)
    if not settings.archive.enabled:
        raise ConfigError("RECONCILER_ARCHIVE", "must be supabase to back-fill or report archiving")
    return asyncio.run(_run_archive(args, settings, Console()))


def _doctor(_: argparse.Namespace) -> int:
    from reconciler.doctor import run

    healthy, findings = run(os.environ)
    for finding in findings:
        # Secrets masked and control characters escaped: findings quote what servers said.
        print(escape_unsafe(Redactor(_known_secrets())(finding.line())), flush=True)
    return 0 if healthy else 1


def _demo(args: argparse.Namespace) -> int:
    from reconciler.local.demo import run_demo

    code: int = asyncio.run(run_demo(clips=args.clips, archive=args.archive))
    return code


_DATABASE = "DATABASE_URL (or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY)"


def _reads(what: str, settings: str) -> str:
    return f"{what} Reads: {settings}; RECONCILER_LOG_LEVEL and RECONCILER_LOG_FORMAT."


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="reconciler",
        description="Keeps Supabase projects.clips in step with Runware video jobs. Settings come"
        " from the environment, then from ./.env (the environment wins); `reconciler COMMAND"
        " --help` names the ones each command reads.",
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {service_version()}")
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP service",
        description=_reads(
            "Run the HTTP service: webhooks, the check endpoint, the engine, /admin, /metrics.",
            f"{_DATABASE}, RUNWARE_API_KEY, RUNWARE_WEBHOOK_SECRET, RECONCILER_ADMIN_TOKEN"
            " (Postgres transport) and every other setting in README's configuration table",
        ),
    )
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")  # noqa: S104
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT or 8000)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser(
        "check",
        help="check one project's pending clips now",
        description=_reads(
            "Ask Runware now about every pending clip of one project and print its clips."
            " Exits 1 when the project is unknown or a check failed on our side (Runware"
            " refused the key or could not be reached).",
            f"{_DATABASE}, RUNWARE_API_KEY, RUNWARE_API_URL",
        ),
    )
    check.add_argument("project_id", metavar="PROJECT_ID")
    check.add_argument("--json", action="store_true", help="print the endpoint's JSON response")
    check.set_defaults(run=_check)

    sweep = commands.add_parser(
        "sweep",
        help="one pass over every project with pending clips, checking due jobs now",
        description=_reads(
            "One pass over every project with pending clips, checking the due jobs with"
            " Runware now.",
            f"{_DATABASE}, RUNWARE_API_KEY, RUNWARE_API_URL",
        ),
    )
    sweep.add_argument(
        "--now",
        action="store_true",
        help="check every pending job now, not only those whose next check is due",
    )
    sweep.set_defaults(run=_sweep)

    resync = commands.add_parser(
        "resync",
        help="scan every project for pending clips the trigger never saw (e.g. after a restore)",
        description=_reads(
            "Scan every project for pending clips the trigger never saw (e.g. after a restore)"
            " and track them.",
            _DATABASE,
        ),
    )
    resync.set_defaults(run=_resync)

    migrate = commands.add_parser(
        "migrate",
        help="apply the SQL migrations not applied yet, through DATABASE_URL",
        description=_reads(
            "Apply the SQL migrations not applied yet (each file in one transaction).",
            "DATABASE_URL, RECONCILER_MIGRATE_LOCK_TIMEOUT_SECONDS,"
            " RECONCILER_MIGRATE_DEADLINE_SECONDS",
        ),
    )
    migrate.set_defaults(run=_migrate)

    uninstall = commands.add_parser(
        "uninstall",
        help="remove everything the migrations added, through DATABASE_URL (projects rows stay)",
        description=_reads(
            "Remove every object the migrations added; projects rows stay as they are.",
            "DATABASE_URL, RECONCILER_MIGRATE_LOCK_TIMEOUT_SECONDS,"
            " RECONCILER_MIGRATE_DEADLINE_SECONDS",
        ),
    )
    uninstall.add_argument("--yes", action="store_true", help="really do it")
    uninstall.set_defaults(run=_uninstall)

    status = commands.add_parser(
        "status",
        help="what is in flight, stuck and failed, and every replica's feed (the operator view)",
        description=_reads(
            "What is in flight, stuck and failed, and every replica's feed (the operator view).",
            f"{_DATABASE}; with --url only RECONCILER_ADMIN_TOKEN",
        ),
    )
    status.add_argument("--json", action="store_true", help="print the view as JSON")
    status.add_argument(
        "--url",
        metavar="SERVICE_URL",
        help="ask a running service's /admin/api instead of the database"
        " (token: RECONCILER_ADMIN_TOKEN)",
    )
    status.add_argument(
        "--project", metavar="PROJECT_ID", help="every clip of this project with its job"
    )
    status.set_defaults(run=_status)
    archive = commands.add_parser(
        "archive",
        help="archiving's backlog; with --backfill, queue clips that hold URLs not archived yet",
        description=_reads(
            "Archiving's backlog; with --backfill, queue the clips that hold URLs not archived"
            " yet.",
            "SUPABASE_URL, SUPABASE_SERVICE_ROLE_KEY (or DATABASE_URL), RECONCILER_ARCHIVE,"
            " RECONCILER_ARCHIVE_BUCKET, RECONCILER_ALLOWED_URL_HOSTS",
        ),
    )
    archive.add_argument(
        "--backfill",
        action="store_true",
        help="scan every project (keyset pages, throttled) and queue its finished clips",
    )
    archive.add_argument(
        "--page-size", type=_at_least(int, 1), default=500, help="projects per page (default 500)"
    )
    archive.add_argument(
        "--pause-seconds",
        type=_at_least(float, 0),
        default=0.1,
        help="pause between pages (default 0.1)",
    )
    archive.set_defaults(run=_archive)

    doctor = commands.add_parser(
        "doctor",
        help="pre-flight check: settings, database, projects' shape, migrations, realtime,"
        " Runware key, Storage bucket, pooler; one line each with the fix; non-zero if any fails",
    )
    doctor.set_defaults(run=_doctor)

    demo = commands.add_parser(
        "demo",
        help="a complete local run: throw-away Postgres, Runware simulator, the service",
        description="A complete local run: a throw-away PostgreSQL, the Runware simulator and"
        " the service, then a table of the clips as they settle. Reads no settings.",
    )
    demo.add_argument("--clips", type=int, default=8, help="pending clips to create (default 8)")
    demo.add_argument(
        "--archive",
        action="store_true",
        help="archiving on: finished videos are copied into a local Storage stand-in",
    )
    demo.set_defaults(run=_demo)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as error:
        _print_error(str(error))
        return EXIT_CONFIG
    except Exception as error:
        # Not a traceback: it would print whatever the error holds, unmasked (e.g. a DATABASE_URL
        # that passes the settings check but not the driver's parser). Commands that load the
        # settings still log it, redacted, with RECONCILER_LOG_LEVEL=debug.
        log.debug("%s failed", args.command, exc_info=True)
        _print_error(f"{type(error).__name__}: {error}")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
