from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import asyncpg
import httpx
import pytest

from reconciler.app import create_app
from reconciler.config import load_settings
from reconciler.engine import Engine
from reconciler.local.localpg import LocalPostgres
from reconciler.local.serving import serve
from reconciler.local.simulator import RunwareSimulator, SimulatorConfig, WebhookRetry
from reconciler.services import Services
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store
from reconciler.store.supabase import connect_supabase_store
from tests import process_guard
from tests.databases import PgCluster
from tests.standins.postgrest import SERVICE_ROLE_KEY, PostgrestStandIn

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-0123456789abcdef"


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # Orphans of processes the suite starts are reparented to it, so the guard below finds
    # them (a `pg_ctl start`'s postmaster, the children of a killed wrapper).
    process_guard.become_subreaper()
    # A CI timeout or a developer's `kill` sends SIGTERM, which would end pytest at once and
    # leave the session's PostgreSQL and every server running. As an interrupt, it still
    # tears fixtures down and runs the guard below.
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)


@pytest.hookimpl(wrapper=True, trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> Iterator[None]:
    """No process started by the suite outlives it: once every fixture is torn down (the
    session's PostgreSQL included), a process still running below pytest fails the run, is
    named with its command line, and is killed."""
    result = yield
    leaked = process_guard.kill_leftovers()
    if leaked:
        message = process_guard.describe(leaked, "the test session")
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_sep("=", "processes outlived the test session", red=True)
            reporter.write_line(message)
        else:
            print(message, file=sys.stderr, flush=True)
        if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    return result


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    with LocalPostgres() as server:
        cluster = PgCluster(server)
        cluster.prepare_template()
        yield cluster


@pytest.fixture
async def database_url(pg_cluster: PgCluster) -> str:
    return await pg_cluster.create_database()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A superuser connection for arranging and inspecting state (the app's side)."""
    conn = await asyncpg.connect(database_url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    yield conn
    await conn.close()


@pytest.fixture
async def postgrest(database_url: str) -> AsyncIterator[tuple[PostgrestStandIn, str]]:
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as url:
        yield stand_in, url


@pytest.fixture(params=["postgres", "supabase"])
async def store(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[FunctionStore]:
    """The Store port through each transport, on the same kind of real database."""
    if request.param == "postgres":
        store = await connect_postgres_store(database_url)
        yield store
        await store.close()
        return
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as url:
        store = await connect_supabase_store(url, SERVICE_ROLE_KEY)
        yield store
        await store.close()


@pytest.fixture
async def simulator() -> AsyncIterator[RunwareSimulator]:
    config = SimulatorConfig(seed=7, webhook_retry=WebhookRetry.fast())
    async with RunwareSimulator(config) as sim:
        yield sim


ServiceFactory = Callable[..., contextlib.AbstractAsyncContextManager[str]]


@pytest.fixture
def service_env(database_url: str, simulator: RunwareSimulator) -> dict[str, str]:
    """Settings for a service on the Postgres transport against the simulator."""
    return {
        "DATABASE_URL": database_url,
        "RECONCILER_ADMIN_TOKEN": ADMIN_TOKEN,
        "RUNWARE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
        "RECONCILER_BATCH_SIZE": "20",
        "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "0",
        "RECONCILER_RUNWARE_MAX_RETRIES": "1",
        # Endpoint tests count Runware requests: no background engine unless a test asks.
        "RECONCILER_ENGINE": "0",
        "RECONCILER_RUNWARE_REQUESTS_PER_SECOND": "1000",
    }


@pytest.fixture
def run_service() -> ServiceFactory:
    """`async with run_service(env) as url:` serves the real app with uvicorn on loopback."""

    @contextlib.asynccontextmanager
    async def running(env: dict[str, str]) -> AsyncIterator[str]:
        async with serve(create_app(load_settings(env))) as url:
            yield url

    return running


@dataclass(frozen=True)
class RunningService:
    url: str
    token: str
    transport: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def webhook_url(self, token: str | None = WEBHOOK_SECRET) -> str:
        query = "" if token is None else f"?token={token}"
        return f"{self.url}/webhooks/runware{query}"

    async def post_webhook(
        self, body: object, token: str | None = WEBHOOK_SECRET, raw: bytes | None = None
    ) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as client:
            if raw is not None:
                return await client.post(
                    self.webhook_url(token),
                    content=raw,
                    headers={"content-type": "application/json"},
                )
            return await client.post(self.webhook_url(token), json=body)


@pytest.fixture(params=["postgres", "supabase"])
async def service(
    request: pytest.FixtureRequest,
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
) -> AsyncIterator[RunningService]:
    """The service on each transport, the Supabase one through the PostgREST stand-in."""
    if request.param == "postgres":
        async with run_service(service_env) as url:
            yield RunningService(url, ADMIN_TOKEN, "postgres")
        return
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as rest_url:
        env = {k: v for k, v in service_env.items() if k not in ("DATABASE_URL",)}
        env |= {"SUPABASE_URL": rest_url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY}
        async with run_service(env) as url:
            yield RunningService(url, SERVICE_ROLE_KEY, "supabase")


ENGINE_ENV = {
    "RECONCILER_ENGINE": "1",
    "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "0.1",
    "RECONCILER_POLL_INTERVAL_SECONDS": "0.1",
    "RECONCILER_BACKOFF_BASE_SECONDS": "0.1",
    "RECONCILER_BACKOFF_CAP_SECONDS": "0.5",
    "RECONCILER_SWEEP_SPREAD_SECONDS": "0",
    "RECONCILER_LEASE_SECONDS": "5",
}


@dataclass(frozen=True)
class RunningApp:
    url: str
    services: Services

    @property
    def engine(self) -> Engine:
        assert self.services.engine is not None
        return self.services.engine


AppFactory = Callable[[dict[str, str]], contextlib.AbstractAsyncContextManager[RunningApp]]


@pytest.fixture
def run_app() -> AppFactory:
    """Like run_service, but keeps a handle on the services (engine stats, feed state)."""

    @contextlib.asynccontextmanager
    async def running(env: dict[str, str]) -> AsyncIterator[RunningApp]:
        app = create_app(load_settings(env))
        async with serve(app) as url:
            yield RunningApp(url, app.state.services)

    return running
