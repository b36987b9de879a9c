"""The HTTP application: routes, middleware and the lifespan that opens the services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from reconciler.config import Settings
from reconciler.http.access_log import AccessLog
from reconciler.http.admin import admin_routes
from reconciler.http.check import check_clips_status
from reconciler.http.health import healthz, readyz
from reconciler.http.metrics import metrics
from reconciler.http.runware_webhook import runware_webhook
from reconciler.observability.metrics import ServiceMetrics
from reconciler.operator.heartbeat import heartbeating
from reconciler.ports import OperatorStore
from reconciler.services import open_services


def create_app(settings: Settings) -> Starlette:
    service_metrics = ServiceMetrics()  # per app: tests run many apps in one process

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, observer=service_metrics) as services:
            app.state.services = services
            app.state.metrics = service_metrics
            service_metrics.watch(services.store, services.engine)
            if services.engine is None:
                yield
                return
            services.engine.start()
            try:
                # Both store adapters implement OperatorStore beside Store.
                store = cast(OperatorStore, services.store)
                interval = settings.heartbeat_seconds
                async with heartbeating(store, services.engine, interval_seconds=interval):
                    yield
            finally:
                await services.engine.stop(settings.shutdown_seconds)

    return Starlette(
        routes=[
            Route("/check-clips-status", check_clips_status, methods=["POST"]),
            Route("/functions/v1/check-clips-status", check_clips_status, methods=["POST"]),
            Route("/webhooks/runware", runware_webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *admin_routes(),
        ],
        middleware=[
            Middleware(AccessLog),
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["POST", "OPTIONS"],
                # What supabase-js's functions.invoke sends from a browser.
                allow_headers=["authorization", "x-client-info", "apikey", "content-type"],
                max_age=86400,
            ),
        ],
        lifespan=lifespan,
    )
