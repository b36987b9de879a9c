"""`reconciler status --url` reads the service's /admin/api with the admin token as the Basic
password, and turns every way the service can refuse or garble an answer into one clear
ServiceRefused — never a traceback, never the token."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest

from reconciler.operator.remote import RemoteOperatorApi, ServiceRefused

TOKEN = "s3cret-admin-token-0123456789abcdef"
OVERVIEW: dict[str, Any] = {
    "generated_at": "2026-12-02T10:00:00+00:00",
    "replicas": [
        {
            "owner": "web-1:7:abc",
            "version": "0.1.0",
            "started_at": "2026-12-02T09:00:00+00:00",
            "last_seen_at": "2026-12-02T09:59:58+00:00",
            "feed_state": "subscribed",
            "leases_held": 2,
            "last_sweep_at": None,
            "alive": True,
        }
    ],
    "unsettled": 1,
    "age_buckets": [{"label": "<1m", "count": 1}],
    "oldest": [
        {
            "project_id": str(uuid4()),
            "job_id": "j",
            "first_seen_at": "2026-12-02T09:59:30+00:00",
            "attempts": 0,
            "next_check_at": "2026-12-02T10:00:30+00:00",
            "last_error": None,
            "progress": None,
        }
    ],
    "failures_24h": [],
    "failure_reasons_24h": [],
    "parked_results": 0,
    "archive_backlog": 3,
}


def api(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteOperatorApi:
    return RemoteOperatorApi("http://service.test/", TOKEN, transport=httpx.MockTransport(handler))


async def test_the_overview_is_read_with_the_token_as_basic_password() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=OVERVIEW)

    overview = await api(handler).overview()

    assert overview.as_json() == OVERVIEW
    assert seen[0].url.path == "/admin/api/overview"
    scheme, _, credentials = seen[0].headers["authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(credentials).decode().split(":", 1)[1] == TOKEN


async def test_an_unknown_project_is_none() -> None:
    project = uuid4()
    answer = await api(lambda _: httpx.Response(404, json={"error": "not found"})).project(project)
    assert answer is None


@pytest.mark.parametrize(
    ("response", "named"),
    [
        (httpx.Response(401, json={"error": "unauthorized"}), "refused the admin token (401)"),
        (httpx.Response(404, text="no such route"), "no operator API at this URL (404)"),
        (httpx.Response(500, text="boom"), "answered 500"),
        (httpx.Response(200, text="<html>not json"), "not JSON"),
        (httpx.Response(200, json={"replicas": []}), "unexpected overview"),
        (httpx.Response(200, json=[1, 2]), "unexpected answer from the service: a JSON list"),
        (httpx.Response(200, json=OVERVIEW | {"generated_at": "yesterday"}), "unexpected"),
    ],
)
async def test_every_refusal_is_named(response: httpx.Response, named: str) -> None:
    with pytest.raises(ServiceRefused) as refused:
        await api(lambda _: response).overview()
    assert named in str(refused.value)
    assert TOKEN not in str(refused.value)


async def test_an_unreachable_service_is_named() -> None:
    def handler(_: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(ServiceRefused, match="service unreachable"):
        await api(handler).overview()


async def test_a_garbled_project_view_is_refused() -> None:
    with pytest.raises(ServiceRefused, match="unexpected project view"):
        await api(lambda _: httpx.Response(200, json={"clips": "x"})).project(uuid4())
