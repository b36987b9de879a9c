"""Wrong admin, metrics or check-endpoint tokens are limited per client address: once an
address has spent its burst of failures it gets 429 with `Retry-After` — even for the right
token — while another address still gets in. Every refusal is logged, naming the address,
never the secret tried."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import httpx
import pytest

from tests.plugin import ADMIN_TOKEN, ServiceFactory

METRICS_TOKEN = "metrics-scrape-token-0123456789abcdef"
WRONG = "wrong-token-that-must-never-be-logged-0123"
BURST = 3
# Loopback addresses a client can send from (Linux routes all of 127.0.0.0/8 to lo).
ATTACKER = "127.0.0.2"
NEIGHBOUR = "127.0.0.3"
CHECK = "/check-clips-status"

Client = Callable[[str], httpx.AsyncClient]


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"operator:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client_from(
    service_env: dict[str, str], run_service: ServiceFactory
) -> AsyncIterator[Client]:
    env = service_env | {
        "RECONCILER_METRICS_TOKEN": METRICS_TOKEN,
        "RECONCILER_AUTH_FAILURE_BURST": str(BURST),
        # The slowest refill there is (one failure per 100 minutes): no token comes back
        # while the test runs, however slow the machine.
        "RECONCILER_AUTH_FAILURE_RATE_PER_MINUTE": "0.01",
    }
    async with run_service(env) as url:
        clients: list[httpx.AsyncClient] = []

        def client(address: str) -> httpx.AsyncClient:
            transport = httpx.AsyncHTTPTransport(local_address=address)
            clients.append(httpx.AsyncClient(base_url=url, transport=transport, timeout=30))
            return clients[-1]

        try:
            yield client
        finally:
            for each in clients:
                await each.aclose()


@pytest.mark.parametrize(
    ("path", "wrong", "right"),
    [
        ("/admin/api/overview", basic(WRONG), basic(ADMIN_TOKEN)),
        ("/metrics", bearer(WRONG), bearer(METRICS_TOKEN)),
    ],
    ids=["admin", "metrics"],
)
async def test_an_address_that_keeps_failing_gets_429_and_another_still_gets_in(
    client_from: Client,
    caplog: pytest.LogCaptureFixture,
    path: str,
    wrong: dict[str, str],
    right: dict[str, str],
) -> None:
    attacker, neighbour = client_from(ATTACKER), client_from(NEIGHBOUR)
    with caplog.at_level(logging.INFO):
        failures = [(await attacker.get(path, headers=wrong)).status_code for _ in range(BURST)]
        limited = await attacker.get(path, headers=wrong)
        right_but_limited = await attacker.get(path, headers=right)
        other_address = await neighbour.get(path, headers=right)

    assert failures == [401] * BURST
    for response in (limited, right_but_limited):
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
    assert other_address.status_code == 200

    refusals = [
        record.getMessage()
        for record in caplog.records
        if record.name == "reconciler.http.auth_failures"
    ]
    assert sum("wrong credentials from 127.0.0.2" in line for line in refusals) == BURST
    assert sum("too many failed authentications from 127.0.0.2" in line for line in refusals) == 2
    everything_logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (WRONG, ADMIN_TOKEN, METRICS_TOKEN):
        assert secret not in everything_logged


async def test_requests_without_credentials_are_not_counted(client_from: Client) -> None:
    browser = client_from(ATTACKER)
    # A browser asks without credentials first, then with them.
    answers = [(await browser.get("/admin")).status_code for _ in range(BURST + 2)]
    signed_in = await browser.get("/admin", headers=basic(ADMIN_TOKEN))

    assert answers == [401] * (BURST + 2)
    assert signed_in.status_code == 200


async def test_wrong_bearer_tokens_on_the_check_endpoint_are_limited_per_address(
    client_from: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # The check endpoint accepts the full-access tokens too: guessing them there must cost
    # as much as on /admin.
    attacker, neighbour = client_from(ATTACKER), client_from(NEIGHBOUR)
    body = {"project_id": str(uuid4())}
    with caplog.at_level(logging.INFO):
        failures = [
            (await attacker.post(CHECK, json=body, headers=bearer(WRONG))).status_code
            for _ in range(BURST)
        ]
        right_but_limited = await attacker.post(CHECK, json=body, headers=bearer(ADMIN_TOKEN))
        other_address = await neighbour.post(CHECK, json=body, headers=bearer(ADMIN_TOKEN))

    assert failures == [401] * BURST
    assert right_but_limited.status_code == 429
    assert int(right_but_limited.headers["retry-after"]) >= 1
    assert right_but_limited.json()["success"] is False
    # Past authentication: the project is unknown.
    assert other_address.status_code == 404
    everything_logged = "\n".join(record.getMessage() for record in caplog.records)
    assert WRONG not in everything_logged
    assert ADMIN_TOKEN not in everything_logged


async def test_check_requests_without_a_token_are_not_counted(client_from: Client) -> None:
    caller = client_from(ATTACKER)
    body = {"project_id": str(uuid4())}
    answers = [(await caller.post(CHECK, json=body)).status_code for _ in range(BURST + 2)]
    signed_in = await caller.post(CHECK, json=body, headers=bearer(ADMIN_TOKEN))

    assert answers == [401] * (BURST + 2)
    assert signed_in.status_code == 404
