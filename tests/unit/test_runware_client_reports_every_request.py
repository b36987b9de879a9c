"""Every request to Runware is reported to `on_request` — its status code, or None when no
answer came — and the metrics count them by status, network errors as "error"."""

from __future__ import annotations

from uuid import uuid4

import httpx

from reconciler.clips import Processing
from reconciler.observability.metrics import ServiceMetrics
from reconciler.runware.client import RunwareClient
from tests.scrape import parse

TASK = str(uuid4())


async def _no_wait(_: float) -> None:
    pass


async def test_statuses_and_network_errors_are_reported() -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"errors": []}),
        httpx.Response(200, json={"data": [{"taskUUID": TASK, "status": "processing"}]}),
    ]

    def handler(_: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    seen: list[int | None] = []
    metrics = ServiceMetrics()

    def on_request(status: int | None) -> None:
        seen.append(status)
        metrics.runware_request(status)

    runware = RunwareClient(
        "https://api.test/v1",
        "key",
        transport=httpx.MockTransport(handler),
        sleep=_no_wait,
        on_request=on_request,
    )
    async with runware:
        assert await runware.get_statuses([TASK]) == {TASK: Processing()}

    assert seen == [None, 503, 200]
    scraped = parse((await metrics.render()).decode())
    for status in ("error", "503", "200"):
        assert scraped.get("reconciler_runware_requests_total", status=status) == 1
