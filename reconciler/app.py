"""The HTTP application: routes, middleware and the lifespan that opens the services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from reconciler.archive.worker import announce_archiving
from reconciler.clock import SYSTEM_CLOCK, Clock
from reconciler.config import Settings
from reconciler.doctor import schema_problem
from reconciler.http.access_log import AccessLog
from reconciler.http.admin import admin_routes
from reconciler.http.auth_failures import FailedAuthentications
from reconciler.http.check import check_clips_status
from reconciler.http.health import DatabaseReadiness, healthz, readyz
from reconciler.http.metrics import metrics
from reconciler.http.runware_webhook import runware_webhook
from reconciler.observability.metrics import ServiceMetrics
from reconciler.operator.heartbeat import heartbeating
from reconciler.ports import StoreRejected, StoreUnavailable
from reconciler.services import Services, open_services

log = logging.getLogger("reconciler.app")

# A schema that does not fit is checked again, and said again, once a minute.
SCHEMA_RECHECK_SECONDS = 60.0


async def _start_archiving(
    services: Services, metrics: ServiceMetrics
) -> asyncio.Task[None] | None:
    """Tell SQL whether results are queued for archiving before the engine writes any (else a
    result written in the first moments of a first start with archiving on would be missed);
    if the database does not answer yet, keep trying in the background. Then start the archive
    worker when archiving is on."""
    enabled = services.archive is not None
    switching: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(services.store.set_archiving(enabled), 5.0)
    except (StoreUnavailable, StoreRejected, TimeoutError):
        switching = asyncio.create_task(
            announce_archiving(services.store, enabled), name="archive-switch"
        )
    if services.archive is not None:
        metrics.watch_archive(services.archive)
        services.archive.start()
    return switching


async def _stop_archiving(
    services: Services, switching: asyncio.Task[None] | None, deadline_seconds: float
) -> None:
    if switching is not None:
        switching.cancel()
        await asyncio.gather(switching, return_exceptions=True)
    if services.archive is not None:
        await services.archive.stop(deadline_seconds)


def create_app(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> Starlette:
    """The service's app. `clock` times what the edge limits and caches (failed
    authentications, the readiness answer); tests pass one they advance by hand."""
    service_metrics = ServiceMetrics()  # per app: tests run many apps in one process
    auth_failures = FailedAuthentications(
        settings.auth_failure_rate_per_minute, settings.auth_failure_burst, clock=clock.now
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_services(settings, observer=service_metrics) as services:
            app.state.services = services
            app.state.auth_failures = auth_failures
            app.state.database_readiness = DatabaseReadiness(services.store, clock=clock.now)
            app.state.metrics = service_metrics
            service_metrics.watch(services.store, services.engine)
            app.state.schema_problem = None
            engine = services.engine
            if engine is None:
                yield
                return
            # Unready until the engine runs: it starts once the schema fits (at once, normally).
            app.state.schema_problem = "checking the database's schema"

            async def start_when_the_schema_fits(running: contextlib.AsyncExitStack) -> None:
                if settings.database_url is not None:
                    while (problem := await schema_problem(settings.database_url)) is not None:
                        # One line a minute that says what to do, instead of every call
                        # failing with "function … does not exist" several times a second.
                        app.state.schema_problem = problem
                        log.warning("not ready: %s", problem)
                        await asyncio.sleep(SCHEMA_RECHECK_SECONDS)
                archiving = await _start_archiving(services, service_metrics)
                # Unwound in reverse: heartbeats stop, then archiving, then the engine.
                running.push_async_callback(engine.stop, settings.shutdown_seconds)
                running.push_async_callback(
                    _stop_archiving, services, archiving, settings.shutdown_seconds
                )
                engine.start()
                interval = settings.heartbeat_seconds
                await running.enter_async_context(
                    heartbeating(services.store, engine, interval_seconds=interval)
                )
                app.state.schema_problem = None

            async with contextlib.AsyncExitStack() as running:
                starting = asyncio.create_task(
                    start_when_the_schema_fits(running), name="start-when-the-schema-fits"
                )
                try:
                    yield
                finally:
                    starting.cancel()
                    await asyncio.gather(starting, return_exceptions=True)

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
