"""No secret reaches a log line, whichever logger writes it: the real `reconciler serve`, at
debug level (where websockets prints its handshake, realtime-py's `?apikey=` included, and
httpx/httpcore trace their requests), is driven through everything that touches a credential:
the realtime connection, webhooks with the right and a wrong token, checks with the service
key, the admin token, a user JWT and a forged JWT, and a database outage. Its whole output is
then searched for every secret it was given."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx
import jwt
import pytest

from reconciler.config import LogFormat
from reconciler.local.simulator import RunwareSimulator
from reconciler.observability.logs import configure_logging
from reconciler.redaction import Redactor
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ENGINE_ENV, WEBHOOK_SECRET
from tests.processes import ServiceProcess
from tests.projects import new_project
from tests.standins.postgrest import JWT_SECRET, SERVICE_ROLE_KEY
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.standins.supabase import SupabaseStandIn, running_supabase
from tests.standins.tcp_proxy import TcpProxy
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS

USER = "00000000-0000-0000-0000-00000000a11c"
WRONG_WEBHOOK_TOKEN = "wrong-webhook-token-that-must-not-be-logged-0123"
DATABASE_PASSWORD = "db-pass-that-must-not-be-logged-4567"
DEBUG = {"RECONCILER_LOG_LEVEL": "debug"}


KEY = "k3y-value-0123456789"
# What the libraries print at debug level, credential included (websockets 15's handshake and
# frames, httpcore's traces, realtime-py's sends), and reprs and dicts our own code may log.
LIBRARY_LINES = [
    f"> GET /realtime/v1/websocket?apikey={KEY}&vsn=1.0.0 HTTP/1.1",
    f"> Authorization: Bearer {KEY}",
    f"< authorization: Basic {KEY}",
    f"> apikey: {KEY}",
    f"> X-Api-Key: {KEY}",
    f"receive_response_headers.complete return_value=[(b'authorization', b'Bearer {KEY}')]",
    f"request headers=[(b'Apikey', b'{KEY}'), (b'host', b'example')]",
    f"headers={{'apikey': '{KEY}', 'Authorization': 'Bearer {KEY}'}}",
    f'send: {{"event":"phx_join","payload":{{"access_token":"{KEY}"}}}}',
    f"HTTP Request: POST https://h/webhooks/runware?x=1&token={KEY} 200",
    f"callback url https://h/hook?Access_Token={KEY}#frag",
    f"connect(password='{KEY}', user='u')",
    f"client_secret={KEY}; next",
    f"token%3D{KEY}",
    f"dsn postgresql://user:{KEY}@db.example:5432/postgres",
]
JWT_LIKE = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize("line", LIBRARY_LINES)
def test_credentials_are_masked_in_every_form_libraries_print(line: str) -> None:
    masked = Redactor()(line)
    assert KEY not in masked
    assert "***" in masked


def test_jwts_and_configured_secrets_are_masked_wherever_they_are() -> None:
    redact = Redactor(["configured-secret-123", "p@ss"])
    assert redact(f"join payload {JWT_LIKE} sent") == "join payload *** sent"
    assert redact("echo:configured-secret-123;") == "echo:***;"
    assert redact("user p@ss and p%40ss") == "user *** and ***"


def test_ordinary_lines_are_left_as_they_are() -> None:
    redact = Redactor(["configured-secret-123"])
    for line in (
        "POST /webhooks/runware 200 1.2ms",
        "Runware rejected the API key: 401 invalid key",
        "sweep: 3 projects with pending clips; monkey=banana",
        'HTTP Request: POST http://127.0.0.1:1/rest/v1/rpc/f "HTTP/1.1 200 OK"',
    ):
        assert redact(line) == line


@pytest.mark.parametrize(
    "hostile",
    ["a" * 262_144, "a://a:" * 50_000, "a_" * 130_000, "eyJ" * 90_000, "token=" * 40_000],
)
def test_hostile_text_is_redacted_in_one_pass(hostile: str) -> None:
    # Job ids from webhook bodies reach log lines; a pattern that rescanned the text from each
    # character would take hours here (and trip the suite's timeout), not milliseconds.
    assert len(Redactor(["configured-secret-123"])(hostile)) > 0


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize("log_format", ["console", "json"])
@pytest.mark.usefixtures("restore_root_logger")
def test_the_handler_masks_every_loggers_lines(log_format: LogFormat) -> None:
    stream = io.StringIO()
    configure_logging("debug", log_format, stream, secrets=["configured-secret-123"])
    logging.getLogger("websockets.client").debug("> GET /ws?apikey=%s HTTP/1.1", KEY)
    logging.getLogger("some.library").warning("using %s", "configured-secret-123")
    try:
        raise RuntimeError(f"connect to postgresql://u:{KEY}@h/db failed")
    except RuntimeError:
        logging.getLogger("reconciler.engine").exception("round failed")
    output = stream.getvalue()
    for masked in ("apikey=***", "using ***", "postgresql://u:***@h/db failed"):
        assert masked in output
    assert KEY not in output
    assert "configured-secret-123" not in output


def _user_jwt(issuer: str, secret: str = JWT_SECRET) -> str:
    claims = {"sub": USER, "aud": "authenticated", "iss": issuer, "role": "authenticated"}
    return jwt.encode(claims | {"exp": 4102444800}, secret, algorithm="HS256")


async def _users_project(db: asyncpg.Connection, simulator: RunwareSimulator) -> UUID:
    simulator.add_job(J.secret_test_job, duration=0, outcome="success")
    return await new_project(db, {J.secret_test_job: "pending"}, owner=UUID(USER))


async def _check(client: httpx.AsyncClient, project: UUID, token: str) -> int:
    response = await client.post(
        "/check-clips-status",
        json={"project_id": str(project)},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code


async def _webhooks(client: httpx.AsyncClient) -> list[int]:
    body = bodies.flat_success(J.secret_test_job, bodies.video_url(J.secret_test_job))
    return [
        (await client.post("/webhooks/runware", params={"token": token}, json=body)).status_code
        for token in (WEBHOOK_SECRET, WRONG_WEBHOOK_TOKEN)
    ]


def _assert_no_secret(output: str, secrets: dict[str, str]) -> None:
    leaked = {name for name, secret in secrets.items() if secret in output}
    lines = [line for line in output.splitlines() if any(s in line for s in secrets.values())]
    assert not leaked, f"{sorted(leaked)} leaked in:\n" + "\n".join(lines[:10])


@pytest.fixture
async def supabase(database_url: str) -> AsyncIterator[SupabaseStandIn]:
    async with running_supabase(database_url) as stand_in:
        yield stand_in


async def test_nothing_secret_is_logged_on_the_supabase_transport(
    service_env: dict[str, str],
    supabase: SupabaseStandIn,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> None:
    project = await _users_project(db, simulator)
    env = {k: v for k, v in service_env.items() if k != "DATABASE_URL"} | ENGINE_ENV | DEBUG
    env |= {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
    }
    user_jwt = _user_jwt(f"{supabase.url}/auth/v1")
    forged_jwt = _user_jwt(f"{supabase.url}/auth/v1", secret="not-the-project-secret-0123456789")
    service = ServiceProcess(env, capture_output=True)
    await service.start()  # ready: the realtime feed is subscribed, so it connected
    try:
        assert supabase.realtime.connections_accepted >= 1
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            assert await _webhooks(client) == [200, 401]
            assert await _check(client, project, SERVICE_ROLE_KEY) == 200
            assert await _check(client, project, ADMIN_TOKEN) == 200
            assert await _check(client, project, user_jwt) == 200
            assert await _check(client, project, forged_jwt) == 401
            supabase.rest.available = False
            assert await _check(client, project, SERVICE_ROLE_KEY) == 503
            supabase.rest.available = True
    finally:
        output = await service.stop_and_read()

    assert "/realtime/v1/websocket" in output  # websockets' debug lines are there…
    _assert_no_secret(  # …without the key they carry
        output,
        {
            "service role key": SERVICE_ROLE_KEY,
            "JWT secret": JWT_SECRET,
            "webhook secret": WEBHOOK_SECRET,
            "wrong webhook token": WRONG_WEBHOOK_TOKEN,
            "admin token": ADMIN_TOKEN,
            "Runware key": simulator.config.api_key,
            "user JWT": user_jwt,
            "forged JWT": forged_jwt,
        },
    )


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(database_url)
    async with TcpProxy("127.0.0.1", target.port or 5432).running() as running:
        yield running


async def test_nothing_secret_is_logged_on_the_postgres_transport(
    service_env: dict[str, str],
    database_url: str,
    proxy: TcpProxy,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> None:
    project = await _users_project(db, simulator)
    # The test cluster trusts loopback: the password is sent along and ignored, which is all
    # this needs — the service holds a DATABASE_URL with a password.
    parts = urlsplit(database_url)
    netloc = f"{parts.username}:{DATABASE_PASSWORD}@127.0.0.1:{proxy.port}"
    env = service_env | ENGINE_ENV | DEBUG
    env |= {
        "DATABASE_URL": urlunsplit(parts._replace(netloc=netloc)),
        "SUPABASE_JWT_SECRET": JWT_SECRET,
    }
    user_jwt = _user_jwt("unused")  # no SUPABASE_URL: the issuer is not checked
    service = ServiceProcess(env, capture_output=True)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
            assert await _webhooks(client) == [200, 401]
            assert await _check(client, project, ADMIN_TOKEN) == 200
            assert await _check(client, project, user_jwt) == 200
            proxy.cut()
            assert await _check(client, project, ADMIN_TOKEN) == 503
            # /readyz reuses the database's answer for about a second.
            await wait_until(lambda: _unready(client), timeout=30, interval=0.1)
            proxy.restore()
            await wait_until(lambda: _ready(client), timeout=30, interval=0.1)
    finally:
        output = await service.stop_and_read()

    assert "database" in output
    _assert_no_secret(
        output,
        {
            "database password": DATABASE_PASSWORD,
            "JWT secret": JWT_SECRET,
            "webhook secret": WEBHOOK_SECRET,
            "wrong webhook token": WRONG_WEBHOOK_TOKEN,
            "admin token": ADMIN_TOKEN,
            "Runware key": simulator.config.api_key,
            "user JWT": user_jwt,
        },
    )


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _unready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 503
