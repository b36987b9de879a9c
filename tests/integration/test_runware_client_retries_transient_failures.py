"""429/503/5xx and network errors are retried with backoff; Retry-After is honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest

from reconciler.clips import CheckError, Processing, Succeeded
from reconciler.local.simulator import ApiFaults, RunwareSimulator, SimulatorConfig
from reconciler.runware.client import RunwareClient

API_KEY = "sim-key"
TASK = str(uuid4())
PROCESSING = {"data": [{"taskUUID": TASK, "status": "processing"}]}


class RecordedSleep:
    """Stands in for asyncio.sleep: remembers what it was asked to wait, waits for nothing."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def scripted(*responses: httpx.Response | Exception) -> httpx.MockTransport:
    """Answer requests with `responses` in order (an exception is raised instead)."""
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler)


def client(transport: httpx.MockTransport, sleep: RecordedSleep, **kwargs: Any) -> RunwareClient:
    return RunwareClient("https://api.test/v1", API_KEY, transport=transport, sleep=sleep, **kwargs)


@pytest.mark.parametrize("status_code", [408, 429, 500, 502, 503, 504])
async def test_transient_status_is_retried_honouring_retry_after(status_code: int) -> None:
    sleep = RecordedSleep()
    transport = scripted(
        httpx.Response(status_code, headers={"Retry-After": "7"}, json={"errors": []}),
        httpx.Response(200, json=PROCESSING),
    )
    async with client(transport, sleep) as runware:
        assert await runware.get_statuses([TASK]) == {TASK: Processing()}
    assert sleep.asked == [7.0]


async def test_retry_after_as_http_date() -> None:
    sleep = RecordedSleep()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    transport = scripted(
        httpx.Response(503, headers={"Retry-After": when}),
        httpx.Response(200, json=PROCESSING),
    )
    async with client(transport, sleep) as runware:
        await runware.get_statuses([TASK])
    # An HTTP-date has one-second resolution and the clock moves on while the test runs.
    assert len(sleep.asked) == 1
    assert 10 < sleep.asked[0] <= 20


async def test_retry_after_in_the_past_means_retry_now() -> None:
    sleep = RecordedSleep()
    transport = scripted(
        httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        httpx.Response(200, json=PROCESSING),
    )
    async with client(transport, sleep) as runware:
        await runware.get_statuses([TASK])
    assert sleep.asked == [0.0]


async def test_backoff_without_retry_after_is_full_jitter_doubling_to_the_cap() -> None:
    sleep = RecordedSleep()
    transport = scripted(
        *[httpx.Response(503, text="busy") for _ in range(4)],
        httpx.Response(200, json=PROCESSING),
    )
    runware = client(
        transport, sleep, max_retries=4, backoff_base_seconds=1.0, backoff_cap_seconds=3.0
    )
    async with runware:
        assert await runware.get_statuses([TASK]) == {TASK: Processing()}
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert len(sleep.asked) == len(ceilings)
    for waited, ceiling in zip(sleep.asked, ceilings, strict=True):
        assert 0.0 <= waited <= ceiling


async def test_network_errors_and_timeouts_are_retried() -> None:
    sleep = RecordedSleep()
    transport = scripted(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=PROCESSING),
    )
    async with client(transport, sleep) as runware:
        assert await runware.get_statuses([TASK]) == {TASK: Processing()}
    assert len(sleep.asked) == 2


async def test_gives_up_after_max_retries_with_a_check_error_per_task() -> None:
    sleep = RecordedSleep()
    others = [str(uuid4()), str(uuid4())]
    transport = scripted(
        *[
            httpx.Response(
                503, json={"errors": [{"code": "serviceUnavailable", "message": "full"}]}
            )
            for _ in range(3)
        ]
    )
    async with client(transport, sleep, max_retries=2) as runware:
        statuses = await runware.get_statuses([TASK, *others])

    assert len(sleep.asked) == 2
    assert set(statuses) == {TASK, *others}
    for status in statuses.values():
        assert isinstance(status, CheckError)
        assert status.message == (
            "Runware unavailable after 3 attempts (HTTP 503, serviceUnavailable: full)"
        )


async def test_retry_after_beyond_the_limit_gives_up_at_once() -> None:
    sleep = RecordedSleep()
    transport = scripted(httpx.Response(429, headers={"Retry-After": "3600"}))
    async with client(transport, sleep, max_retry_after_seconds=60) as runware:
        status = (await runware.get_statuses([TASK]))[TASK]
    assert sleep.asked == []
    assert isinstance(status, CheckError)
    assert "3600s" in status.message


async def test_against_the_simulator_refusing_everything() -> None:
    config = SimulatorConfig(api_key=API_KEY, api=ApiFaults(error_rate=1.0, retry_after_seconds=2))
    seen: list[int | None] = []
    sleep = RecordedSleep()
    async with RunwareSimulator(config) as sim:
        job = sim.add_job(TASK, duration=0)
        runware = RunwareClient(
            sim.url, API_KEY, max_retries=3, sleep=sleep, on_request=seen.append
        )
        async with runware:
            status = (await runware.get_statuses([TASK]))[TASK]
            assert isinstance(status, CheckError)
            assert sim.counters.api_faults_injected == 4
            assert sleep.asked == [2.0, 2.0, 2.0]
            assert set(seen) <= {429, 503}
            assert len(seen) == 4

            # Once the simulator recovers, the same client gets real answers again.
            sim.config.api.error_rate = 0.0
            final = (await runware.get_statuses([TASK]))[TASK]
    assert final == Succeeded(job.video_urls()[0], job.video_uuids[0])
