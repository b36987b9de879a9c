"""Wiring: build the adapters the settings ask for, and close them again."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.clips import UrlPolicy
from reconciler.config import Settings
from reconciler.ports import RunwareApi, Store
from reconciler.runware import RunwareClient
from reconciler.store.postgres import connect_postgres_store
from reconciler.store.supabase import connect_supabase_store
from reconciler.webhooks import WebhookIngestor


@dataclass(frozen=True)
class Services:
    settings: Settings
    store: Store
    runware: RunwareApi
    checker: ClipChecker
    webhooks: WebhookIngestor


async def connect_store(settings: Settings) -> Store:
    if settings.transport == "postgres":
        assert settings.database_url is not None  # guaranteed by load_settings
        return await connect_postgres_store(settings.database_url, max_size=settings.db_pool_size)
    assert settings.supabase_url is not None
    assert settings.supabase_service_role_key is not None
    return await connect_supabase_store(settings.supabase_url, settings.supabase_service_role_key)


def runware_client(settings: Settings) -> RunwareClient:
    return RunwareClient(
        api_url=settings.runware_api_url,
        api_key=settings.runware_api_key,
        batch_size=settings.batch_size,
        max_in_flight=settings.runware_concurrency,
        max_retries=settings.runware_max_retries,
        timeout_seconds=settings.runware_timeout_seconds,
    )


def check_policy(settings: Settings) -> CheckPolicy:
    return CheckPolicy(
        first_check_delay_seconds=settings.first_check_delay_seconds,
        unknown_task_grace_seconds=settings.unknown_task_grace_seconds,
        url_policy=UrlPolicy(settings.allowed_url_hosts),
    )


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    store = await connect_store(settings)
    runware = runware_client(settings)
    policy = check_policy(settings)
    webhooks = WebhookIngestor(
        store, runware, policy.url_policy, confirm=settings.webhook_verify == "api"
    )
    try:
        yield Services(settings, store, runware, ClipChecker(store, runware, policy), webhooks)
    finally:
        await runware.aclose()
        await store.close()
