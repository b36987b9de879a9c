"""Settings from the environment. A missing or malformed value stops start-up with one line
that names it (`ConfigError`)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from reconciler.archive.paths import (
    DEFAULT_PATH_TEMPLATE,
    ObjectPathError,
    ObjectPathTemplate,
    check_bucket_name,
)
from reconciler.clips import DEFAULT_ALLOWED_URL_HOSTS, AllowedOrigin, parse_allowed_origin
from reconciler.redaction import mask_url_password

Transport = Literal["postgres", "supabase"]
WebhookVerify = Literal["off", "api"]
FeedKind = Literal["realtime", "off"]
LogFormat = Literal["console", "json"]
ArchiveKind = Literal["off", "supabase"]
T = TypeVar("T")

DEFAULT_RUNWARE_API_URL = "https://api.runware.ai/v1"
MIN_WEBHOOK_SECRET_LENGTH = 32
# The token travels in a query string, where `+`, `/`, `=` and `%` are decoded or mangled on
# the way (a `+` arrives as a space): only RFC 3986 unreserved characters survive every hop.
_URL_SAFE_SECRET = re.compile(r"[A-Za-z0-9._~-]+")


class ConfigError(ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


_DEFAULT_ARCHIVE_PATH = ObjectPathTemplate.parse(DEFAULT_PATH_TEMPLATE)


@dataclass(frozen=True)
class ArchiveSettings:
    """RECONCILER_ARCHIVE and its knobs (see README, "Archiving")."""

    kind: ArchiveKind = "off"
    bucket: str | None = None
    path: ObjectPathTemplate = _DEFAULT_ARCHIVE_PATH
    max_bytes: int = 2 * 1024**3
    concurrency: int = 2
    lease_seconds: float = 300.0
    max_attempts: int = 10
    retry_base_seconds: float = 30.0
    retry_cap_seconds: float = 3600.0

    @property
    def enabled(self) -> bool:
        return self.kind != "off"


@dataclass(frozen=True)
class Settings:
    transport: Transport
    database_url: str | None
    supabase_url: str | None
    supabase_service_role_key: str | None
    admin_token: str | None
    runware_api_key: str
    runware_api_url: str
    port: int
    batch_size: int
    runware_concurrency: int
    runware_max_retries: int
    runware_timeout_seconds: float
    first_check_delay_seconds: float
    unknown_task_grace_seconds: float
    allowed_url_hosts: frozenset[AllowedOrigin]
    db_pool_size: int
    log_level: str
    log_format: LogFormat = "console"
    webhook_secrets: tuple[str, ...] = ()
    insecure_webhooks: bool = False
    webhook_verify: WebhookVerify = "off"
    webhook_max_bytes: int = 256 * 1024
    webhook_max_tasks: int = 1000
    engine: bool = True
    feed: FeedKind = "off"
    workers: int = 4
    poll_interval_seconds: float = 2.0
    claim_batch: int = 200
    lease_seconds: float = 60.0
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 300.0
    give_up_seconds: float = 3600.0
    sweep_on_start: bool = True
    sweep_interval_seconds: float = 300.0
    sweep_spread_seconds: float = 60.0
    retention_days: float = 7.0
    resync_interval_seconds: float = 86400.0
    metrics_token: str | None = None
    runware_requests_per_second: float = 5.0
    shutdown_seconds: float = 10.0
    supabase_jwt_secret: str | None = None
    cors_origins: tuple[str, ...] = ()
    check_rate_per_minute: float = 60.0
    check_rate_burst: int = 10
    # Full-access callers (service role key, admin token) are backends: no limit unless set.
    service_check_rate_per_minute: float | None = None
    service_check_rate_burst: int = 10
    jwks_min_refetch_seconds: float = 30.0
    jwt_leeway_seconds: float = 30.0
    # Archiving finished videos into Supabase Storage (off by default).
    archive: ArchiveSettings = ArchiveSettings()

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
        found: list[str] = [*self.webhook_secrets]
        for value in (
            self.supabase_service_role_key,
            self.admin_token,
            self.runware_api_key,
            self.metrics_token,
            self.supabase_jwt_secret,
        ):
            if value:
                found.append(value)
        if self.database_url:
            password = urlsplit(self.database_url).password
            if password:
                found.append(password)
        return tuple(found)


def _url(name: str, value: str, schemes: tuple[str, ...]) -> str:
    try:
        parts = urlsplit(value)
        valid = parts.scheme in schemes and bool(parts.netloc)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        valid = False
    if not valid:
        # The value may carry a password (DATABASE_URL): never echo it.
        shown = mask_url_password(value)
        raise ConfigError(name, f"expected a {'/'.join(schemes)} URL, got {shown!r}")
    return value.rstrip("/")


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str, why: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(name, f"is required ({why})")
        return value

    def number(
        self, name: str, default: T, parse: Callable[[str], T], minimum: float, kind: str
    ) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            raise ConfigError(name, f"expected {kind}, got {raw!r}") from None
        if value < minimum:  # type: ignore[operator]
            raise ConfigError(name, f"must be at least {minimum:g}, got {raw!r}")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        return self.number(name, default, int, minimum, "a whole number")

    def seconds(self, name: str, default: float, minimum: float = 0) -> float:
        return self.number(name, default, float, minimum, "a number of seconds")

    def rate(self, name: str, default: float, minimum: float, unit: str) -> float:
        return self.number(name, default, float, minimum, f"a number {unit}")


def _flag(read: _Reader, name: str, *, default: bool = False) -> bool:
    raw = (read.text(name) or ("1" if default else "0")).lower()
    if raw not in ("0", "1", "true", "false", "yes", "no"):
        raise ConfigError(name, f"expected 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes")


def _webhook_secrets(read: _Reader, serving: bool) -> tuple[tuple[str, ...], bool]:
    """Secrets accepted in the webhook URL's `token` (a comma list, for rotation)."""
    raw = read.text("RUNWARE_WEBHOOK_SECRET")
    secrets = tuple(s.strip() for s in raw.split(",") if s.strip()) if raw else ()
    for secret in secrets:
        if len(secret) < MIN_WEBHOOK_SECRET_LENGTH or not _URL_SAFE_SECRET.fullmatch(secret):
            raise ConfigError(
                "RUNWARE_WEBHOOK_SECRET",
                f"each secret must be at least {MIN_WEBHOOK_SECRET_LENGTH} characters of"
                " A-Z a-z 0-9 . _ ~ - (it travels in a URL, where + / = % are mangled;"
                " generate one: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
            )
    insecure = _flag(read, "RECONCILER_INSECURE_WEBHOOKS")
    if serving and not secrets and not insecure:
        raise ConfigError(
            "RUNWARE_WEBHOOK_SECRET",
            "is required to authenticate webhooks"
            " (for local development only: RECONCILER_INSECURE_WEBHOOKS=1)",
        )
    return secrets, insecure


def _archive_settings(
    read: _Reader, supabase_url: str | None, service_key: str | None
) -> ArchiveSettings:
    """RECONCILER_ARCHIVE and its knobs; with archiving on, Storage's URL, key and bucket."""
    kind = (read.text("RECONCILER_ARCHIVE") or "off").lower()
    if kind not in ("off", "supabase"):
        raise ConfigError("RECONCILER_ARCHIVE", f"expected off or supabase, got {kind!r}")
    bucket = read.text("RECONCILER_ARCHIVE_BUCKET")
    if kind == "supabase":
        if supabase_url is None:
            raise ConfigError("SUPABASE_URL", "is required with RECONCILER_ARCHIVE=supabase")
        if service_key is None:
            raise ConfigError(
                "SUPABASE_SERVICE_ROLE_KEY", "is required with RECONCILER_ARCHIVE=supabase"
            )
        if bucket is None:
            raise ConfigError(
                "RECONCILER_ARCHIVE_BUCKET", "is required with RECONCILER_ARCHIVE=supabase"
            )
    try:
        if bucket is not None:
            check_bucket_name(bucket)
    except ObjectPathError as error:
        raise ConfigError("RECONCILER_ARCHIVE_BUCKET", str(error)) from None
    try:
        path = ObjectPathTemplate.parse(
            read.text("RECONCILER_ARCHIVE_PATH") or DEFAULT_PATH_TEMPLATE
        )
    except ObjectPathError as error:
        raise ConfigError("RECONCILER_ARCHIVE_PATH", str(error)) from None
    return ArchiveSettings(
        kind="supabase" if kind == "supabase" else "off",
        bucket=bucket,
        path=path,
        max_bytes=read.integer("RECONCILER_ARCHIVE_MAX_BYTES", 2 * 1024**3),
        concurrency=read.integer("RECONCILER_ARCHIVE_CONCURRENCY", 2),
        lease_seconds=read.seconds("RECONCILER_ARCHIVE_LEASE_SECONDS", 300.0, 1.0),
        max_attempts=read.integer("RECONCILER_ARCHIVE_MAX_ATTEMPTS", 10),
        retry_base_seconds=read.seconds("RECONCILER_ARCHIVE_RETRY_BASE_SECONDS", 30.0, 0.01),
        retry_cap_seconds=read.seconds("RECONCILER_ARCHIVE_RETRY_CAP_SECONDS", 3600.0, 0.01),
    )


def load_settings(
    env: Mapping[str, str], *, require_runware: bool = True, serving: bool = True
) -> Settings:
    """`serving`: the settings are for the HTTP service, which receives webhooks."""
    read = _Reader(env)

    database_url = read.text("DATABASE_URL")
    if database_url is not None:
        database_url = _url("DATABASE_URL", database_url, ("postgres", "postgresql"))
    supabase_url = read.text("SUPABASE_URL")
    if supabase_url is not None:
        supabase_url = _url("SUPABASE_URL", supabase_url, ("http", "https"))
    service_key = read.text("SUPABASE_SERVICE_ROLE_KEY")

    chosen = (read.text("RECONCILER_TRANSPORT") or "auto").lower()
    if chosen not in ("auto", "postgres", "supabase"):
        raise ConfigError(
            "RECONCILER_TRANSPORT", f"expected auto, postgres or supabase, got {chosen!r}"
        )
    transport: Transport
    if chosen == "postgres" or (chosen == "auto" and database_url is not None):
        transport = "postgres"
        if database_url is None:
            raise ConfigError("DATABASE_URL", "is required with RECONCILER_TRANSPORT=postgres")
    else:
        transport = "supabase"
        if supabase_url is None:
            raise ConfigError(
                "SUPABASE_URL", "is required (or set DATABASE_URL for direct Postgres)"
            )
        if service_key is None:
            raise ConfigError("SUPABASE_SERVICE_ROLE_KEY", "is required with SUPABASE_URL")

    admin_token = read.text("RECONCILER_ADMIN_TOKEN")
    if transport == "postgres" and admin_token is None and service_key is None:
        raise ConfigError(
            "RECONCILER_ADMIN_TOKEN",
            "is required with DATABASE_URL (callers of the check endpoint present it)",
        )

    if require_runware:
        runware_api_key = read.required("RUNWARE_API_KEY", "to ask Runware for job status")
    else:
        runware_api_key = read.text("RUNWARE_API_KEY") or ""
    runware_api_url = _url(
        "RUNWARE_API_URL",
        read.text("RUNWARE_API_URL") or DEFAULT_RUNWARE_API_URL,
        ("http", "https"),
    )

    hosts_raw = read.text("RECONCILER_ALLOWED_URL_HOSTS")
    entries = (
        [h.strip() for h in hosts_raw.split(",") if h.strip()]
        if hosts_raw
        else list(DEFAULT_ALLOWED_URL_HOSTS)
    )
    if not entries:
        raise ConfigError("RECONCILER_ALLOWED_URL_HOSTS", "must name at least one host")
    try:
        hosts = frozenset(parse_allowed_origin(entry) for entry in entries)
    except ValueError as error:
        raise ConfigError("RECONCILER_ALLOWED_URL_HOSTS", str(error)) from None

    log_level = (read.text("RECONCILER_LOG_LEVEL") or "info").lower()
    if log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(
            "RECONCILER_LOG_LEVEL", f"expected debug, info, warning or error, got {log_level!r}"
        )
    log_format_raw = (read.text("RECONCILER_LOG_FORMAT") or "console").lower()
    if log_format_raw not in ("console", "json"):
        raise ConfigError(
            "RECONCILER_LOG_FORMAT", f"expected console or json, got {log_format_raw!r}"
        )
    log_format: LogFormat = "json" if log_format_raw == "json" else "console"

    webhook_secrets, insecure_webhooks = _webhook_secrets(read, serving)
    verify = (read.text("RECONCILER_WEBHOOK_VERIFY") or "off").lower()
    if verify not in ("off", "api"):
        raise ConfigError("RECONCILER_WEBHOOK_VERIFY", f"expected off or api, got {verify!r}")

    feed_raw = (read.text("RECONCILER_FEED") or "auto").lower()
    if feed_raw not in ("auto", "notify", "realtime", "off"):
        raise ConfigError("RECONCILER_FEED", f"expected auto, realtime or off, got {feed_raw!r}")
    # The app's changes arrive through the outbox its own transactions write, on both
    # transports; realtime only makes them seen sooner. v0.1's `notify` (LISTEN/NOTIFY) is
    # accepted and means `off`: a NOTIFY in the app's transaction cost it ~30% of its writes.
    feed: FeedKind = (
        "realtime"
        if feed_raw == "realtime" or (feed_raw == "auto" and transport == "supabase")
        else "off"
    )
    if feed == "realtime" and (supabase_url is None or service_key is None):
        raise ConfigError(
            "RECONCILER_FEED", "realtime needs SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
        )

    origins_raw = read.text("RECONCILER_CORS_ORIGINS")
    origins = (
        tuple(o.strip().rstrip("/") for o in origins_raw.split(",") if o.strip())
        if origins_raw
        else ()
    )
    for origin in origins:
        if origin != "*":
            _url("RECONCILER_CORS_ORIGINS", origin, ("http", "https"))

    return Settings(
        archive=_archive_settings(read, supabase_url, service_key),
        supabase_jwt_secret=read.text("SUPABASE_JWT_SECRET"),
        metrics_token=read.text("RECONCILER_METRICS_TOKEN"),
        cors_origins=origins,
        check_rate_per_minute=read.rate(
            "RECONCILER_CHECK_RATE_PER_MINUTE", 60.0, 0.01, "of checks per minute"
        ),
        check_rate_burst=read.integer("RECONCILER_CHECK_RATE_BURST", 10),
        service_check_rate_per_minute=read.rate(
            "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE", 0.0, 0.0, "of checks per minute"
        )
        or None,
        service_check_rate_burst=read.integer("RECONCILER_SERVICE_CHECK_RATE_BURST", 10),
        jwks_min_refetch_seconds=read.seconds("RECONCILER_JWKS_MIN_REFETCH_SECONDS", 30.0),
        jwt_leeway_seconds=read.seconds("RECONCILER_JWT_LEEWAY_SECONDS", 30.0),
        webhook_max_tasks=read.integer("RECONCILER_WEBHOOK_MAX_TASKS", 1000),
        engine=_flag(read, "RECONCILER_ENGINE", default=True),
        feed=feed,
        workers=read.integer("RECONCILER_WORKERS", 4),
        poll_interval_seconds=read.seconds("RECONCILER_POLL_INTERVAL_SECONDS", 2.0, 0.01),
        claim_batch=read.integer("RECONCILER_CLAIM_BATCH", 200),
        lease_seconds=read.seconds("RECONCILER_LEASE_SECONDS", 60.0, 1.0),
        backoff_base_seconds=read.seconds("RECONCILER_BACKOFF_BASE_SECONDS", 5.0, 0.01),
        backoff_cap_seconds=read.seconds("RECONCILER_BACKOFF_CAP_SECONDS", 300.0, 0.01),
        give_up_seconds=read.seconds("RECONCILER_GIVE_UP_SECONDS", 3600.0, 1.0),
        sweep_on_start=_flag(read, "RECONCILER_SWEEP_ON_START", default=True),
        sweep_interval_seconds=read.seconds("RECONCILER_SWEEP_INTERVAL_SECONDS", 300.0),
        sweep_spread_seconds=read.seconds("RECONCILER_SWEEP_SPREAD_SECONDS", 60.0),
        resync_interval_seconds=read.seconds("RECONCILER_RESYNC_INTERVAL_SECONDS", 86400.0),
        retention_days=read.number(
            "RECONCILER_RETENTION_DAYS", 7.0, float, 0.0001, "a number of days"
        ),
        runware_requests_per_second=read.rate(
            "RECONCILER_RUNWARE_REQUESTS_PER_SECOND", 5.0, 0.01, "of requests per second"
        ),
        shutdown_seconds=read.seconds("RECONCILER_SHUTDOWN_SECONDS", 10.0, 0.1),
        webhook_secrets=webhook_secrets,
        insecure_webhooks=insecure_webhooks,
        webhook_verify="api" if verify == "api" else "off",
        webhook_max_bytes=read.integer("RECONCILER_WEBHOOK_MAX_BYTES", 256 * 1024),
        transport=transport,
        database_url=database_url,
        supabase_url=supabase_url,
        supabase_service_role_key=service_key,
        admin_token=admin_token,
        runware_api_key=runware_api_key,
        runware_api_url=runware_api_url,
        port=read.integer("PORT", 8000, minimum=0),
        batch_size=read.integer("RECONCILER_BATCH_SIZE", 50),
        runware_concurrency=read.integer("RECONCILER_RUNWARE_CONCURRENCY", 4),
        runware_max_retries=read.integer("RECONCILER_RUNWARE_MAX_RETRIES", 4, minimum=0),
        runware_timeout_seconds=read.seconds("RECONCILER_RUNWARE_TIMEOUT_SECONDS", 30.0, 0.1),
        first_check_delay_seconds=read.seconds("RECONCILER_FIRST_CHECK_DELAY_SECONDS", 30.0),
        unknown_task_grace_seconds=read.seconds("RECONCILER_UNKNOWN_TASK_GRACE_SECONDS", 600.0),
        allowed_url_hosts=hosts,
        db_pool_size=read.integer("RECONCILER_DB_POOL_SIZE", 10),
        log_level=log_level,
        log_format=log_format,
    )
