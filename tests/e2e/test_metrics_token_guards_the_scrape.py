"""With RECONCILER_METRICS_TOKEN set, /metrics answers only a scrape that presents it."""

from __future__ import annotations

import httpx
import pytest

from tests.plugin import ServiceFactory

TOKEN = "metrics-scrape-token-0123456789abcdef"


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {TOKEN}"}, 401),
        ({"Authorization": f"Bearer {TOKEN}"}, 200),
    ],
    ids=["none", "wrong", "not-bearer", "right"],
)
async def test_scrapes_need_the_token(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    headers: dict[str, str],
    status: int,
) -> None:
    async with (
        run_service(service_env | {"RECONCILER_METRICS_TOKEN": TOKEN}) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.get("/metrics", headers=headers)
    assert response.status_code == status
    assert ("reconciler_webhooks_total" in response.text) == (status == 200)
