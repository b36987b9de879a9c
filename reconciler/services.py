"""Wiring: build the adapters the settings ask for, and close them again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx

from reconciler.archive.transfer import AttemptLimits, StorageUploader
from reconciler.archive.worker import ArchivePolicy, ArchiveWorker
from reconciler.auth import CallerVerifier, JwksCache
from reconciler.backoff import Backoff
from reconciler.checker import CheckLimits, CheckPolicy, ClipChecker
from reconciler.clips import UrlPolicy
from reconciler.config import Settings
from reconciler.engine import Engine, EnginePolicy
from reconciler.ingest import WebhookIngestor
from reconciler.observability.observer import NullObserver, Observer
from reconciler.ports import ChangeFeed, FullStore, RunwareApi
from reconciler.ratelimit import KeyedRateLimiter, TokenBucket
from reconciler.runware.client import RunwareClient
from reconciler.schedule import PollPolicy
from reconciler.store.postgres import connect_postgres_store
from reconciler.store.supabase import connect_supabase_store


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: FullStore
    runware: RunwareApi
    checker: ClipChecker
    webhooks: WebhookIngestor
    engine: Engine | None
    callers: CallerVerifier
    check_rate_limit: KeyedRateLimiter
    # None: full-access callers (service role key, admin token) are not rate-limited.
    service_check_rate_limit: KeyedRateLimiter | None = None
    observer: Observer = field(default_factory=NullObserver)
    # Copies finished videos into Storage (RECONCILER_ARCHIVE=supabase, with the engine).
    archive: ArchiveWorker | None = None


async def connect_store(settings: Settings) -> FullStore:
    if settings.transport == "postgres":
        assert settings.database_url is not None  # guaranteed by load_settings
        return await connect_postgres_store(settings.database_url, max_size=settings.db_pool_size)
    assert settings.supabase_url is not None
    assert settings.supabase_service_role_key is not None
    return await connect_supabase_store(settings.supabase_url, settings.supabase_service_role_key)


def runware_client(settings: Settings, observer: Observer | None = None) -> RunwareClient:
    return RunwareClient(
        api_url=settings.runware_api_url,
        api_key=settings.runware_api_key,
        batch_size=settings.batch_size,
        max_in_flight=settings.runware_concurrency,
        max_retries=settings.runware_max_retries,
        timeout_seconds=settings.runware_timeout_seconds,
        rate_limit=TokenBucket(settings.runware_requests_per_second),
        on_request=observer.runware_request if observer is not None else None,
    )


def check_policy(settings: Settings) -> CheckPolicy:
    return CheckPolicy(
        first_check_delay_seconds=settings.first_check_delay_seconds,
        unknown_task_grace_seconds=settings.unknown_task_grace_seconds,
        url_policy=UrlPolicy(settings.allowed_url_hosts),
        user_limits=CheckLimits(settings.user_check_max_jobs, settings.user_check_max_clips_bytes),
    )


def change_feed(settings: Settings) -> ChangeFeed | None:
    if settings.feed == "realtime":
        from reconciler.feeds.realtime import RealtimeFeed

        assert settings.supabase_url is not None
        assert settings.supabase_service_role_key is not None
        return RealtimeFeed(settings.supabase_url, settings.supabase_service_role_key)
    return None


def engine_policy(settings: Settings) -> EnginePolicy:
    return EnginePolicy(
        workers=settings.workers,
        poll_interval_seconds=settings.poll_interval_seconds,
        claim_batch=settings.claim_batch,
        claim_per_project=settings.claim_per_project,
        max_pending_per_project=settings.max_pending_per_project,
        lease_seconds=settings.lease_seconds,
        sweep_on_start=settings.sweep_on_start,
        sweep_interval_seconds=settings.sweep_interval_seconds,
        sweep_spread_seconds=settings.sweep_spread_seconds,
        retention_seconds=settings.retention_days * 86400,
        resync_interval_seconds=settings.resync_interval_seconds,
        poll=PollPolicy(
            backoff_base_seconds=settings.backoff_base_seconds,
            backoff_cap_seconds=settings.backoff_cap_seconds,
            give_up_after_seconds=settings.give_up_seconds,
        ),
    )


def archive_policy(settings: Settings) -> ArchivePolicy:
    assert settings.supabase_url is not None  # guaranteed by load_settings with archiving on
    assert settings.archive.bucket is not None
    return ArchivePolicy(
        supabase_url=settings.supabase_url,
        bucket=settings.archive.bucket,
        path=settings.archive.path,
        max_bytes=settings.archive.max_bytes,
        concurrency=settings.archive.concurrency,
        lease_seconds=settings.archive.lease_seconds,
        max_attempts=settings.archive.max_attempts,
        retry=Backoff(settings.archive.retry_base_seconds, settings.archive.retry_cap_seconds),
        idle_seconds=settings.poll_interval_seconds,
        limits=AttemptLimits(
            deadline_seconds=settings.archive.attempt_seconds,
            min_bytes_per_second=settings.archive.min_bytes_per_second,
            window_seconds=settings.archive.slow_window_seconds,
        ),
    )


def archive_worker(settings: Settings, store: FullStore, http: httpx.AsyncClient) -> ArchiveWorker:
    assert settings.supabase_url is not None
    assert settings.supabase_service_role_key is not None
    uploader = StorageUploader(http, settings.supabase_url, settings.supabase_service_role_key)
    return ArchiveWorker(
        store, http, uploader, UrlPolicy(settings.allowed_url_hosts), archive_policy(settings)
    )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, *, with_feed: bool = True, observer: Observer | None = None
) -> AsyncIterator[Services]:
    """Adapters and use cases; the engine is built (when enabled) but not started.

    `observer` hears what the services do (for metrics); nothing is reported without one."""
    observer = observer or NullObserver()
    store = await connect_store(settings)
    runware = runware_client(settings, observer)
    policy = check_policy(settings)
    webhooks = WebhookIngestor(store, runware, policy, confirm=settings.webhook_verify == "api")
    checker = ClipChecker(store, runware, policy)
    engine = (
        Engine(
            store,
            checker,
            policy=engine_policy(settings),
            feed=change_feed(settings) if with_feed else None,
            observer=observer,
        )
        if settings.engine
        else None
    )
    auth_http = httpx.AsyncClient(timeout=10)
    # Videos are large: a generous read timeout between pieces, a short connect timeout.
    archive_http = httpx.AsyncClient(timeout=httpx.Timeout(120, connect=10))
    archive = (
        archive_worker(settings, store, archive_http)
        if settings.archive.enabled and settings.engine
        else None
    )
    callers = CallerVerifier(
        trusted_tokens=settings.caller_tokens,
        issuer=settings.jwt_issuer,
        jwt_secret=settings.supabase_jwt_secret,
        jwks=(
            JwksCache(
                settings.jwks_url,
                auth_http,
                min_refetch_seconds=settings.jwks_min_refetch_seconds,
            )
            if settings.jwks_url
            else None
        ),
        leeway_seconds=settings.jwt_leeway_seconds,
    )
    rate_limit = KeyedRateLimiter(settings.check_rate_per_minute, settings.check_rate_burst)
    service_rate_limit = (
        KeyedRateLimiter(settings.service_check_rate_per_minute, settings.service_check_rate_burst)
        if settings.service_check_rate_per_minute
        else None
    )
    try:
        yield Services(
            settings,
            store,
            runware,
            checker,
            webhooks,
            engine,
            callers,
            rate_limit,
            service_rate_limit,
            observer,
            archive,
        )
    finally:
        await archive_http.aclose()
        await auth_http.aclose()
        await runware.aclose()
        await store.close()
