"""Settings from the environment, each declared once.

Every setting is one field of `Settings`: its environment name, type, default, bounds and a
one-line help, in one declaration. `load_settings` reads them from a mapping (the CLI passes
`os.environ`; tests and the demo pass their own), and a missing or malformed value stops
start-up with one line that names it (`ConfigError`). The README's configuration table and
`.env.example` are rendered from the same declarations (`python -m reconciler.config
--markdown` / `--env-example`), and unit tests compare them, so neither can go stale.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, get_args, get_origin
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from reconciler.archive.paths import (
    DEFAULT_PATH_TEMPLATE,
    ObjectPathError,
    ObjectPathTemplate,
    check_bucket_name,
)
from reconciler.archive.transfer import DEFAULT_ATTEMPT_LIMITS
from reconciler.clips import DEFAULT_ALLOWED_URL_HOSTS, AllowedOrigin, parse_allowed_origin
from reconciler.redaction import mask_url_password

Transport = Literal["postgres", "supabase"]
TransportChoice = Literal["auto", "postgres", "supabase"]
WebhookVerify = Literal["off", "api"]
FeedKind = Literal["realtime", "off"]
FeedChoice = Literal["auto", "realtime", "off"]
LogFormat = Literal["console", "json"]
LogLevel = Literal["debug", "info", "warning", "error"]
ArchiveKind = Literal["off", "supabase"]

# Every secret that opens something (an endpoint, full access, a signature) is at least this
# long: 32 random characters cannot be guessed online, and the failed-authentication limit
# (reconciler/http/auth_failures.py) makes trying them slower still.
MIN_TOKEN_LENGTH = 32
MIN_WEBHOOK_SECRET_LENGTH = MIN_TOKEN_LENGTH
_GENERATE = "generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
# The token travels in a query string, where `+`, `/`, `=` and `%` are decoded or mangled on
# the way (a `+` arrives as a space): only RFC 3986 unreserved characters survive every hop.
_URL_SAFE_SECRET = re.compile(r"[A-Za-z0-9._~-]+")
_HIDDEN = "**********"


class ConfigError(ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


# --- Value types: each parses the environment's text and says in one phrase what is wrong ---


def _url(value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in schemes and bool(parts.netloc)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        valid = False
    if not valid:
        # The value may carry a password (DATABASE_URL): never echo it.
        raise ValueError(f"expected a {'/'.join(schemes)} URL, got {mask_url_password(value)!r}")
    return value.rstrip("/")


def _url_of(*schemes: str) -> AfterValidator:
    return AfterValidator(lambda value: _url(value, schemes))


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _webhook_secrets(secrets: tuple[str, ...]) -> tuple[str, ...]:
    for secret in secrets:
        if len(secret) < MIN_WEBHOOK_SECRET_LENGTH or not _URL_SAFE_SECRET.fullmatch(secret):
            # Never the value: a refused secret is still a secret.
            raise ValueError(
                f"each secret must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters of"
                " A-Z a-z 0-9 . _ ~ - (it travels in a URL, where + / = % are mangled;"
                " generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
    return secrets


def _long_secret(hint: str) -> AfterValidator:
    def check(value: str) -> str:
        if len(value) < MIN_TOKEN_LENGTH:
            # Never the value, nor its length: a refused secret is still a secret.
            raise ValueError(f"must be at least {MIN_TOKEN_LENGTH} characters ({hint})")
        return value

    return AfterValidator(check)


def _cors_origins(origins: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(
        origin if origin == "*" else _url(origin.rstrip("/"), ("http", "https"))
        for origin in origins
    )


def _allowed_hosts(value: object) -> frozenset[AllowedOrigin]:
    entries = _comma_list(value)
    if not isinstance(entries, tuple) or not entries:
        raise ValueError("must name at least one host")
    return frozenset(parse_allowed_origin(entry) for entry in entries)


def _notify_means_off(value: object) -> object:
    # v0.1's `notify` (LISTEN/NOTIFY) is accepted and means `off`: a NOTIFY in the app's
    # transaction cost it ~30% of its writes, and the outbox carries the changes anyway.
    return "off" if isinstance(value, str) and value == "notify" else value


def _archive_path(value: str) -> str:
    try:
        return ObjectPathTemplate.parse(value).template
    except ObjectPathError as error:
        raise ValueError(str(error)) from None


def _bucket(value: str) -> str:
    try:
        return check_bucket_name(value)
    except ObjectPathError as error:
        raise ValueError(str(error)) from None


PostgresUrl = Annotated[str, _url_of("postgres", "postgresql")]
ArchivePath = Annotated[str, AfterValidator(_archive_path)]
BucketName = Annotated[str, AfterValidator(_bucket)]
HttpUrl = Annotated[str, _url_of("http", "https")]
WebhookSecrets = Annotated[
    tuple[str, ...], BeforeValidator(_comma_list), AfterValidator(_webhook_secrets)
]
CorsOrigins = Annotated[
    tuple[str, ...], BeforeValidator(_comma_list), AfterValidator(_cors_origins)
]
# A token that opens an endpoint (the admin token, the metrics token).
Token = Annotated[str, _long_secret(_GENERATE)]
ServiceRoleKey = Annotated[
    str, _long_secret("copy the whole key from Project Settings > API; it opens /admin too")
]
JwtSecret = Annotated[
    str, _long_secret("copy the whole secret from Project Settings > API > JWT Settings")
]
AllowedHosts = Annotated[frozenset[AllowedOrigin], PlainValidator(_allowed_hosts)]


# --- Declaring a setting: everything about it in one call ---------------------------------


def _setting(
    env: str,
    default: object,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str | None = None,
    secret: bool = False,
    fill_in: bool = False,
) -> Any:
    """A field read from the environment variable `env`. `unit` words a number ("seconds");
    `secret` keeps the value out of reprs (`Settings.__repr_args__`) and error lines, and
    hands it to the log redactor (`Settings.secrets`); `fill_in` leaves the variable
    uncommented in `.env.example` (a value most deployments must give)."""
    return Field(
        default,
        validation_alias=env,
        description=help,
        ge=minimum,
        le=maximum,
        # NaN passes every bound check, and an infinite interval stalls a loop forever.
        allow_inf_nan=False if isinstance(default, float) else None,
        json_schema_extra={
            "minimum": minimum,
            "maximum": maximum,
            "unit": unit,
            "secret": secret,
            "fill_in": fill_in,
        },
    )


def _seconds(env: str, default: float, help: str, *, minimum: float = 0.0) -> Any:
    return _setting(env, default, help, minimum=minimum, unit="seconds")


def _whole(
    env: str, default: int, help: str, *, minimum: int = 1, maximum: int | None = None
) -> Any:
    return _setting(env, default, help, minimum=minimum, maximum=maximum)


@dataclass(frozen=True)
class ArchiveSettings:
    """RECONCILER_ARCHIVE and its knobs, as the archive worker and the CLI use them."""

    kind: ArchiveKind
    bucket: str | None
    path: ObjectPathTemplate
    max_bytes: int
    concurrency: int
    lease_seconds: float
    max_attempts: int
    retry_base_seconds: float
    retry_cap_seconds: float
    attempt_seconds: float
    min_bytes_per_second: int
    slow_window_seconds: float

    @property
    def enabled(self) -> bool:
        return self.kind != "off"


class Settings(BaseSettings):
    """The service's settings. Field order is the order of the README table and
    `.env.example`; `_SECTIONS` below groups them there."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=True, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the mapping `load_settings` is given: tests, the demo and the benchmarks build
        # settings side by side in one process, so the process environment must not leak in.
        return (init_settings,)

    # Database
    supabase_url: HttpUrl | None = _setting(
        "SUPABASE_URL",
        None,
        "your project URL (`https://<ref>.supabase.co`); selects the Supabase transport"
        " (PostgREST RPC)",
        fill_in=True,
    )
    supabase_service_role_key: ServiceRoleKey | None = _setting(
        "SUPABASE_SERVICE_ROLE_KEY",
        None,
        "service role key (Project Settings > API); also accepted as the check endpoint's"
        " bearer token",
        secret=True,
        fill_in=True,
    )
    database_url: PostgresUrl | None = _setting(
        "DATABASE_URL",
        None,
        "direct Postgres (`postgresql://…`; through Supabase's pooler, session mode on port"
        " 5432 is best; transaction mode, port 6543, is detected and works with the statement"
        " cache off); selects the Postgres transport when set",
    )
    requested_transport: TransportChoice = _setting(
        "RECONCILER_TRANSPORT",
        "auto",
        "`postgres`, `supabase`, or `auto` (Postgres when `DATABASE_URL` is set)",
    )
    admin_token: Token | None = _setting(
        "RECONCILER_ADMIN_TOKEN",
        None,
        "bearer token for the check endpoint and Basic password of `/admin`; required by"
        " `serve` with `DATABASE_URL` unless the service key is set; ≥ 32 characters",
        secret=True,
    )
    db_pool_size: int = _whole(
        "RECONCILER_DB_POOL_SIZE", 10, "Postgres connections at most (Postgres transport)"
    )
    migrate_lock_timeout_seconds: float = _setting(
        "RECONCILER_MIGRATE_LOCK_TIMEOUT_SECONDS",
        2.0,
        "`migrate` and `uninstall`: how long one step waits for a lock (on `projects`, the app's"
        " writes queue behind that wait) before it rolls back and retries",
        minimum=0.05,
        maximum=60.0,
        unit="seconds",
    )
    migrate_deadline_seconds: float = _seconds(
        "RECONCILER_MIGRATE_DEADLINE_SECONDS",
        300.0,
        "`migrate` and `uninstall`: how long retries may go on before giving up (exit 1, the"
        " step rolled back)",
        minimum=1.0,
    )

    # Check endpoint callers
    supabase_jwt_secret: JwtSecret | None = _setting(
        "SUPABASE_JWT_SECRET",
        None,
        "verifies HS256 user JWTs (projects on the legacy JWT secret); ES256/RS256 use the JWKS"
        " at `SUPABASE_URL` — on the Postgres transport set `SUPABASE_URL` too, for the JWKS"
        " and the issuer",
        secret=True,
    )
    cors_origins: CorsOrigins = _setting(
        "RECONCILER_CORS_ORIGINS",
        "",
        "comma-separated browser origins allowed to call the check endpoint (`*` for any)",
    )
    check_rate_per_minute: float = _setting(
        "RECONCILER_CHECK_RATE_PER_MINUTE",
        60.0,
        "check endpoint rate limit per signed-in user (user JWTs only): sustained checks per"
        " minute",
        minimum=0.01,
        unit="checks per minute",
    )
    check_rate_burst: int = _whole(
        "RECONCILER_CHECK_RATE_BURST", 10, "checks a signed-in user may make at once"
    )
    service_check_rate_per_minute: float = _setting(
        "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE",
        0.0,
        "rate limit for full-access callers (service role key, admin token), all sharing one"
        " bucket; `0`: not limited, as backends should not be",
        minimum=0.0,
        unit="checks per minute",
    )
    service_check_rate_burst: int = _whole(
        "RECONCILER_SERVICE_CHECK_RATE_BURST",
        10,
        "checks full-access callers may make at once, when they are rate-limited",
    )
    user_check_max_jobs: int = _whole(
        "RECONCILER_USER_CHECK_MAX_JOBS",
        50,
        "pending jobs one signed-in user's check asks Runware about (those tracked longest"
        " first; with the batch size, one `getResponse` request); the others answer `pending`"
        " and their scheduled poll covers them",
        maximum=2**31 - 1,
    )
    user_check_max_clips_bytes: int = _whole(
        "RECONCILER_USER_CHECK_MAX_CLIPS_BYTES",
        1_048_576,
        "largest `clips` column (its JSON text) a signed-in user's check reads and answers"
        ' whole; a larger one gets a truncated answer (`"truncated": true`, only the checked'
        " jobs in `clips` and `details`), in bytes",
        maximum=2**31 - 1,  # a PostgreSQL integer
    )
    jwt_leeway_seconds: float = _seconds(
        "RECONCILER_JWT_LEEWAY_SECONDS",
        30.0,
        "clock skew allowed on user JWTs' `exp`, `nbf` and `iat` (PostgREST allows the same)",
    )
    jwks_min_refetch_seconds: float = _seconds(
        "RECONCILER_JWKS_MIN_REFETCH_SECONDS",
        30.0,
        "a token with an unknown key id refetches the JWKS at most this often (one fetch at a"
        " time; a failed fetch counts too)",
    )

    # Runware
    runware_api_key: str = _setting(
        "RUNWARE_API_KEY",
        "",
        "required: the key the service asks Runware for job status with",
        secret=True,
        fill_in=True,
    )
    runware_api_url: HttpUrl = _setting(
        "RUNWARE_API_URL",
        "https://api.runware.ai/v1",
        "Runware's API endpoint; point it at the simulator for local runs",
    )
    webhook_secrets: WebhookSecrets = _setting(
        "RUNWARE_WEBHOOK_SECRET",
        "",
        "required by `serve`: the `token` in the webhook URL; a comma-separated list accepts"
        " several during rotation; each ≥ 32 characters of `A-Z a-z 0-9 . _ ~ -` (a `+`, `/`"
        " or `=` from base64 is mangled in a URL; generate with `secrets.token_urlsafe(32)`)",
        secret=True,
        fill_in=True,
    )
    insecure_webhooks: bool = _setting(
        "RECONCILER_INSECURE_WEBHOOKS",
        False,
        "`1` accepts webhooks without a configured secret — local development only",
    )
    webhook_verify: WebhookVerify = _setting(
        "RECONCILER_WEBHOOK_VERIFY",
        "off",
        "`api`: a webhook is only a hint, the result written is the one `getResponse` confirms",
    )
    webhook_max_bytes: int = _whole(
        "RECONCILER_WEBHOOK_MAX_BYTES", 256 * 1024, "larger webhook bodies get 413"
    )
    webhook_max_tasks: int = _whole(
        "RECONCILER_WEBHOOK_MAX_TASKS",
        1000,
        "a webhook body naming more tasks gets 413 and nothing is stored",
    )
    batch_size: int = _whole("RECONCILER_BATCH_SIZE", 50, "`getResponse` tasks per Runware request")
    runware_concurrency: int = _whole(
        "RECONCILER_RUNWARE_CONCURRENCY",
        4,
        "Runware requests in flight at most (Runware advises 2 to 4)",
    )
    runware_max_retries: int = _whole(
        "RECONCILER_RUNWARE_MAX_RETRIES",
        4,
        "retries on 408/429/5xx/network errors (backoff 1 s doubling, cap 30 s, jitter,"
        " `Retry-After` honoured)",
        minimum=0,
    )
    runware_timeout_seconds: float = _seconds(
        "RECONCILER_RUNWARE_TIMEOUT_SECONDS", 30.0, "per Runware request", minimum=0.1
    )
    runware_requests_per_second: float = _setting(
        "RECONCILER_RUNWARE_REQUESTS_PER_SECOND",
        5.0,
        "global cap on Runware requests (token bucket), besides the in-flight cap",
        minimum=0.01,
        unit="requests per second",
    )
    allowed_url_hosts: AllowedHosts = _setting(
        "RECONCILER_ALLOWED_URL_HOSTS",
        ",".join(DEFAULT_ALLOWED_URL_HOSTS),
        "where video URLs may point: a bare host means `https` on port 443; an entry with"
        " scheme and port (`http://127.0.0.1:8100`) allows exactly that origin (local runs and"
        " tests)",
    )

    # HTTP
    port: int = _whole("PORT", 8000, "HTTP port for `serve`", minimum=0, maximum=65535)
    header_timeout_seconds: float = _seconds(
        "RECONCILER_HEADER_TIMEOUT_SECONDS",
        10.0,
        "a connection whose request line and headers have not all arrived this long after it"
        " opened (or after its previous answer) is closed: a slow client cannot hold it",
        minimum=0.1,
    )
    max_connections: int = _whole(
        "RECONCILER_MAX_CONNECTIONS",
        500,
        "open connections (and requests in progress) at most; a request beyond them is"
        " answered 503 at once",
    )
    auth_failure_rate_per_minute: float = _setting(
        "RECONCILER_AUTH_FAILURE_RATE_PER_MINUTE",
        10.0,
        "wrong admin, metrics or check tokens allowed per client address, sustained; beyond"
        " them the address gets 429 with `Retry-After`, whatever it presents",
        minimum=0.01,
        unit="failures per minute",
    )
    auth_failure_burst: int = _whole(
        "RECONCILER_AUTH_FAILURE_BURST",
        10,
        "wrong admin, metrics or check tokens one client address may send at once before it is"
        " answered 429",
    )

    # Engine
    engine: bool = _setting(
        "RECONCILER_ENGINE",
        True,
        "`0` runs only the HTTP endpoints (no change feed, poller or sweeps)",
    )
    requested_feed: Annotated[FeedChoice, BeforeValidator(_notify_means_off)] = _setting(
        "RECONCILER_FEED",
        "auto",
        "`realtime` (the default on the Supabase transport) or `off` (the default on the"
        " Postgres transport); the app's changes reach the engine through the outbox either"
        " way, realtime only makes them seen sooner; v0.1's `notify` means `off`",
    )
    workers: int = _whole("RECONCILER_WORKERS", 4, "projects reconciled concurrently")
    poll_interval_seconds: float = _seconds(
        "RECONCILER_POLL_INTERVAL_SECONDS",
        2.0,
        "how often the poller looks for due jobs when idle (woken earlier by new jobs)",
        minimum=0.01,
    )
    claim_batch: int = _whole("RECONCILER_CLAIM_BATCH", 200, "due jobs claimed per poll round")
    claim_per_project: int = _whole(
        "RECONCILER_CLAIM_PER_PROJECT",
        50,
        "at most this many of one project's due jobs per poll round; a round takes every"
        " project's oldest due job first, so one project's backlog never delays another's",
    )
    max_pending_per_project: int = _whole(
        "RECONCILER_MAX_PENDING_PER_PROJECT",
        1000,
        "pending jobs tracked per project; keys beyond it are recorded as not tracked (with"
        " the reason, counted in `reconciler_untrackable_clips`) until its jobs settle",
    )
    lease_seconds: float = _seconds(
        "RECONCILER_LEASE_SECONDS",
        60.0,
        "a claimed job's lease; renewed while a round runs, taken over by another replica once"
        " expired",
        minimum=1.0,
    )
    first_check_delay_seconds: float = _seconds(
        "RECONCILER_FIRST_CHECK_DELAY_SECONDS",
        30.0,
        "a fresh job's first scheduled poll waits this long (videos take minutes)",
    )
    backoff_base_seconds: float = _seconds(
        "RECONCILER_BACKOFF_BASE_SECONDS",
        5.0,
        "per-job backoff between polls starts here, doubling, jittered",
        minimum=0.01,
    )
    backoff_cap_seconds: float = _seconds(
        "RECONCILER_BACKOFF_CAP_SECONDS",
        300.0,
        "per-job backoff between polls never exceeds this",
        minimum=0.01,
    )
    unknown_task_grace_seconds: float = _seconds(
        "RECONCILER_UNKNOWN_TASK_GRACE_SECONDS",
        600.0,
        '`taskNotFound`/`taskExpired` mark a clip `"failed"` only once the job is this old',
    )
    give_up_seconds: float = _seconds(
        "RECONCILER_GIVE_UP_SECONDS",
        3600.0,
        'a job Runware still calls unfinished after this long becomes `"failed"`, the reason'
        " recorded (never while our checks fail: Runware unreachable, rate-limiting or"
        " rejecting the key)",
        minimum=1.0,
    )
    sweep_on_start: bool = _setting(
        "RECONCILER_SWEEP_ON_START", True, "sweep when the service starts"
    )
    sweep_interval_seconds: float = _seconds(
        "RECONCILER_SWEEP_INTERVAL_SECONDS",
        300.0,
        "periodic sweep over projects with unsettled jobs (±10% jitter); `0` turns it off",
    )
    resync_interval_seconds: float = _seconds(
        "RECONCILER_RESYNC_INTERVAL_SECONDS",
        86400.0,
        "full scan of `projects`, in throttled keyset pages, for writes that bypassed the"
        " trigger (`session_replication_role = replica`, restores); `0` turns it off"
        " (`reconciler resync` runs one now)",
    )
    sweep_spread_seconds: float = _seconds(
        "RECONCILER_SWEEP_SPREAD_SECONDS",
        60.0,
        "jobs a sweep finds untracked become due spread over this window, so a restart over"
        " 100,000 pending jobs does not stampede Runware",
    )
    retention_days: float = _setting(
        "RECONCILER_RETENTION_DAYS",
        7.0,
        "after each sweep, settled jobs' tracking rows and parked webhook results that never"
        " found a project are deleted once this old",
        minimum=0.0001,
        unit="days",
    )
    metrics_token: Token | None = _setting(
        "RECONCILER_METRICS_TOKEN",
        None,
        "when set, `GET /metrics` requires `Authorization: Bearer <token>`; ≥ 32 characters",
        secret=True,
    )
    shutdown_seconds: float = _seconds(
        "RECONCILER_SHUTDOWN_SECONDS",
        10.0,
        "on SIGTERM: stop taking work, finish within this, release leases",
        minimum=0.1,
    )
    heartbeat_seconds: float = _seconds(
        "RECONCILER_HEARTBEAT_SECONDS",
        5.0,
        "how often each serving replica records its heartbeat (`reconciler status`, /admin); "
        "shown dead after 3 missed beats",
        minimum=0.05,
    )

    # Archiving finished videos into Supabase Storage (README, "Archiving")
    archive_kind: ArchiveKind = _setting(
        "RECONCILER_ARCHIVE",
        "off",
        "`supabase`: copy each finished video into Supabase Storage and swap the clip to the"
        " object's URL (needs `SUPABASE_URL` and `SUPABASE_SERVICE_ROLE_KEY`, on either"
        " transport); `off` keeps Runware's URLs, which Runware deletes after a while",
    )
    archive_bucket: BucketName | None = _setting(
        "RECONCILER_ARCHIVE_BUCKET",
        None,
        "the Storage bucket videos are copied into; required with archiving on",
    )
    archive_path: ArchivePath = _setting(
        "RECONCILER_ARCHIVE_PATH",
        DEFAULT_PATH_TEMPLATE,
        "object path in the bucket: `{project_id}` and `{job_id}`, both required (so one"
        " project's clip never lands on another's object), and no other placeholder; no `..`,"
        " no leading `/`",
    )
    archive_max_bytes: int = _whole(
        "RECONCILER_ARCHIVE_MAX_BYTES",
        2 * 1024**3,
        "larger videos are not archived (given up; the clip keeps its Runware URL)",
    )
    archive_concurrency: int = _whole(
        "RECONCILER_ARCHIVE_CONCURRENCY", 2, "videos copied at once, per replica"
    )
    archive_lease_seconds: float = _seconds(
        "RECONCILER_ARCHIVE_LEASE_SECONDS",
        300.0,
        "a copy's lease; renewed while it runs, handed back on SIGTERM, taken over by another"
        " replica once expired (after a `kill -9`)",
        minimum=1.0,
    )
    archive_max_attempts: int = _whole(
        "RECONCILER_ARCHIVE_MAX_ATTEMPTS",
        10,
        "attempts per video before it is given up (the clip keeps its Runware URL)",
    )
    archive_retry_base_seconds: float = _seconds(
        "RECONCILER_ARCHIVE_RETRY_BASE_SECONDS",
        30.0,
        "backoff between attempts of one video starts here, doubling, jittered",
        minimum=0.01,
    )
    archive_retry_cap_seconds: float = _seconds(
        "RECONCILER_ARCHIVE_RETRY_CAP_SECONDS",
        3600.0,
        "backoff between attempts of one video never exceeds this",
        minimum=0.01,
    )
    archive_attempt_seconds: float = _seconds(
        "RECONCILER_ARCHIVE_ATTEMPT_SECONDS",
        DEFAULT_ATTEMPT_LIMITS.deadline_seconds,
        "one attempt (download and upload of one video) is cut after this long and counts as"
        " a failed attempt; raise it with `RECONCILER_ARCHIVE_MAX_BYTES` on a slow link",
        minimum=0.01,
    )
    archive_min_bytes_per_second: int = _setting(
        "RECONCILER_ARCHIVE_MIN_BYTES_PER_SECOND",
        DEFAULT_ATTEMPT_LIMITS.min_bytes_per_second,
        "an attempt moving fewer bytes than this per second over a"
        " `RECONCILER_ARCHIVE_SLOW_WINDOW_SECONDS` window is cut and counts as a failed attempt"
        " (a trickling origin cannot hold a copy slot); `0` checks only the deadline",
        minimum=0,
        unit="bytes per second",
    )
    archive_slow_window_seconds: float = _seconds(
        "RECONCILER_ARCHIVE_SLOW_WINDOW_SECONDS",
        DEFAULT_ATTEMPT_LIMITS.window_seconds,
        "the window `RECONCILER_ARCHIVE_MIN_BYTES_PER_SECOND` is measured over: consecutive"
        " windows from the attempt's start",
        minimum=0.01,
    )

    # Logs
    log_level: LogLevel = _setting(
        "RECONCILER_LOG_LEVEL", "info", "`debug`, `info`, `warning` or `error`"
    )
    log_format: LogFormat = _setting(
        "RECONCILER_LOG_FORMAT",
        "console",
        "`console` (for people) or `json`: one JSON object per line, for log pipelines",
    )

    @property
    def transport(self) -> Transport:
        if self.requested_transport == "postgres" or (
            self.requested_transport == "auto" and self.database_url is not None
        ):
            return "postgres"
        return "supabase"

    @property
    def feed(self) -> FeedKind:
        # The app's changes arrive through the outbox its own transactions write, on both
        # transports; realtime only makes them seen sooner.
        if self.requested_feed == "realtime" or (
            self.requested_feed == "auto" and self.transport == "supabase"
        ):
            return "realtime"
        return "off"

    @property
    def archive(self) -> ArchiveSettings:
        """The archiving settings, with the path template parsed (validated on load)."""
        return ArchiveSettings(
            kind=self.archive_kind,
            bucket=self.archive_bucket,
            path=ObjectPathTemplate.parse(self.archive_path),
            max_bytes=self.archive_max_bytes,
            concurrency=self.archive_concurrency,
            lease_seconds=self.archive_lease_seconds,
            max_attempts=self.archive_max_attempts,
            retry_base_seconds=self.archive_retry_base_seconds,
            retry_cap_seconds=self.archive_retry_cap_seconds,
            attempt_seconds=self.archive_attempt_seconds,
            min_bytes_per_second=self.archive_min_bytes_per_second,
            slow_window_seconds=self.archive_slow_window_seconds,
        )

    @property
    def jwt_issuer(self) -> str | None:
        return f"{self.supabase_url}/auth/v1" if self.supabase_url else None

    @property
    def jwks_url(self) -> str | None:
        return f"{self.supabase_url}/auth/v1/.well-known/jwks.json" if self.supabase_url else None

    @property
    def caller_tokens(self) -> tuple[str, ...]:
        """Bearer tokens that may call the check endpoint with full access."""
        return tuple(t for t in (self.supabase_service_role_key, self.admin_token) if t)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every configured secret, for the log redactor: none may ever reach a log line."""
        found: list[str] = []
        for name, field in type(self).model_fields.items():
            if _extra(field, "secret"):
                value = getattr(self, name)
                found.extend(value if isinstance(value, tuple) else [value] if value else [])
        if self.database_url:
            password = urlsplit(self.database_url).password
            if password:
                found.append(password)
        return tuple(found)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Secrets are shown as set or not, never their value; URLs lose their password.
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if _extra(field, "secret"):
                yield name, (_HIDDEN if value else value)
            elif isinstance(value, str):
                yield name, mask_url_password(value)
            else:
                yield name, value


_SECTIONS: Final = {
    "supabase_url": "Database: the Supabase transport (PostgREST RPC) or direct Postgres",
    "supabase_jwt_secret": "Check endpoint callers",
    "runware_api_key": "Runware",
    "port": "HTTP",
    "engine": "Engine",
    "archive_kind": "Archiving finished videos into Supabase Storage",
    "log_level": "Logs",
}


def _extra(field: FieldInfo, key: str) -> Any:
    extra = field.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


def _env_name(field: FieldInfo) -> str:
    alias = field.validation_alias
    assert isinstance(alias, str), "every setting declares its environment variable"
    return alias


def env_names() -> dict[str, str]:
    """Attribute name → environment variable, for every setting."""
    return {name: _env_name(field) for name, field in Settings.model_fields.items()}


ENV: Final = env_names()
# The declared defaults, validated: the policies elsewhere take their defaults from here, so
# each default is written once, in its declaration above.
DEFAULTS: Final = Settings()


# --- Reading the environment ---------------------------------------------------------------


def _choices(field: FieldInfo) -> tuple[str, ...]:
    """The values a Literal-typed setting takes; () for any other setting."""
    annotation = field.annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return get_args(annotation) if get_origin(annotation) is Literal else ()


def _one_of(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _bounds(field: FieldInfo) -> str:
    low, high = _extra(field, "minimum"), _extra(field, "maximum")
    if low is not None and high is not None:
        return f" from {low:g} to {high:g}"
    return f" ≥ {low:g}" if low is not None else ""


def _expected(field: FieldInfo) -> str:
    """What the setting takes, in words: `a whole number ≥ 1`, `console or json`."""
    if choices := _choices(field):
        return _one_of(choices)
    if field.annotation is bool:
        return "1 or 0"
    if field.annotation is int:
        return f"a whole number{_bounds(field)}"
    unit = _extra(field, "unit")
    return f"a number of {unit}{_bounds(field)}" if unit else f"a number{_bounds(field)}"


def _config_error(error: ValidationError) -> ConfigError:
    """The first problem, as one line naming the setting (fields are checked in order)."""
    first = error.errors()[0]
    env = str(first["loc"][0]) if first["loc"] else "settings"
    field = next((f for f in Settings.model_fields.values() if _env_name(f) == env), None)
    if first["type"] == "value_error":  # our own rule: its message is the whole story
        return ConfigError(env, str(first.get("ctx", {}).get("error", first["msg"])))
    if field is None:
        return ConfigError(env, first["msg"])
    shown = _HIDDEN if _extra(field, "secret") else repr(first["input"])
    expected = _expected(field)
    if first["type"] == "finite_number":  # inf, nan
        expected = expected.replace("a number", "a finite number", 1)
    return ConfigError(env, f"expected {expected}, got {shown}")


def _fail(name: str, problem: str) -> ConfigError:
    return ConfigError(ENV[name], problem)


def _check_combinations(settings: Settings, *, require_runware: bool, serving: bool) -> None:
    """Rules across settings; each names the setting to change."""
    if settings.transport == "postgres":
        if settings.database_url is None:
            raise _fail("database_url", "is required with RECONCILER_TRANSPORT=postgres")
        # An HTTP credential: only the service needs it; commands that read the database don't.
        if serving and settings.admin_token is None and settings.supabase_service_role_key is None:
            raise _fail(
                "admin_token",
                "is required with DATABASE_URL (callers of the check endpoint present it)",
            )
    else:
        if settings.supabase_url is None:
            raise _fail("supabase_url", "is required (or set DATABASE_URL for direct Postgres)")
        if settings.supabase_service_role_key is None:
            raise _fail("supabase_service_role_key", "is required with SUPABASE_URL")
    if require_runware and not settings.runware_api_key:
        raise _fail("runware_api_key", "is required (to ask Runware for job status)")
    if settings.feed == "realtime" and (
        settings.supabase_url is None or settings.supabase_service_role_key is None
    ):
        raise _fail("requested_feed", "realtime needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY")
    if settings.archive_kind == "supabase":
        if settings.supabase_url is None:
            raise _fail("supabase_url", "is required with RECONCILER_ARCHIVE=supabase")
        if settings.supabase_service_role_key is None:
            raise _fail("supabase_service_role_key", "is required with RECONCILER_ARCHIVE=supabase")
        if settings.archive_bucket is None:
            raise _fail("archive_bucket", "is required with RECONCILER_ARCHIVE=supabase")
    if serving and not settings.webhook_secrets and not settings.insecure_webhooks:
        raise _fail(
            "webhook_secrets",
            "is required to authenticate webhooks"
            " (for local development only: RECONCILER_INSECURE_WEBHOOKS=1)",
        )


def environment(environ: Mapping[str, str], env_file: Path = Path(".env")) -> dict[str, str]:
    """What the CLI reads its settings from: `environ` over the `.env` file in the working
    directory (if there is one), so an exported variable always wins over the file, as
    `.env.example` tells adopters to copy it there."""
    from_file: dict[str, str] = {}
    if env_file.is_file():
        from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return from_file | dict(environ)


def load_only(env: Mapping[str, str], *names: str) -> Settings:
    """The settings `names` (field names) from `env`, every other one at its default and no rule
    across settings checked: for commands that need a few (`migrate` needs `DATABASE_URL`
    and its lock limits). Raises ConfigError naming a bad one."""
    fields = Settings.model_fields
    given: dict[str, Any] = {}
    for name in names:
        env_name = _env_name(fields[name])
        value = env.get(env_name, "").strip()
        if value:
            given[env_name] = value
    try:
        return Settings(**given)
    except ValidationError as error:
        raise _config_error(error) from None


def load_settings(
    env: Mapping[str, str], *, require_runware: bool = True, serving: bool = True
) -> Settings:
    """The settings in `env` (and nothing else). `serving`: they are for the HTTP service,
    which receives webhooks. Raises ConfigError naming the first bad setting."""
    given: dict[str, Any] = {}
    for field in Settings.model_fields.values():
        name = _env_name(field)
        value = env.get(name, "").strip()
        if value:  # empty means unset, as `NAME=` in a .env file does
            given[name] = value.lower() if _choices(field) else value
    try:
        settings = Settings(**given)
    except ValidationError as error:
        raise _config_error(error) from None
    _check_combinations(settings, require_runware=require_runware, serving=serving)
    return settings


# --- The declarations as documentation -----------------------------------------------------


def _default_text(field: FieldInfo) -> str:
    """The default as one would write it in the environment ("" when there is none)."""
    value = field.default
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def markdown_table() -> str:
    """README.md's configuration table."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field in Settings.model_fields.values():
        default = _default_text(field)
        shown = f"`{default}`" if default else "—"
        rows.append(f"| `{_env_name(field)}` | {shown} | {field.description} |")
    return "\n".join(rows) + "\n"


def env_example() -> str:
    """`.env.example`: every setting with its help; those without a value to fill in are
    commented out and show their default."""
    lines = [
        "# clip-reconciler settings: copy to .env, fill in the empty values, keep .env out of git.",
        "# Generated from reconciler/config.py (python -m reconciler.config --env-example). Empty",
        "# values stop start-up with one line naming what is missing; commented-out lines show the",
        "# default.",
    ]
    for name, field in Settings.model_fields.items():
        if name in _SECTIONS:
            lines += ["", f"# --- {_SECTIONS[name]} ".ljust(95, "-")]
        help_text = (field.description or "").replace("`", "")
        lines += textwrap.wrap(help_text, 95, initial_indent="# ", subsequent_indent="# ")
        value = "" if _extra(field, "fill_in") else _default_text(field)
        lines.append(f"{'' if _extra(field, 'fill_in') else '# '}{_env_name(field)}={value}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.config", description="Print the settings' documentation."
    )
    form = parser.add_mutually_exclusive_group(required=True)
    form.add_argument("--markdown", action="store_true", help="README.md's configuration table")
    form.add_argument("--env-example", action="store_true", help="the .env.example file")
    args = parser.parse_args(argv)
    sys.stdout.write(markdown_table() if args.markdown else env_example())
    return 0


if __name__ == "__main__":
    sys.exit(main())
