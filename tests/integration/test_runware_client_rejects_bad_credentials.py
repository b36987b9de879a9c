"""401/402/403 raise RunwareCredentialsRejected at once, with a clear message and no key."""

from __future__ import annotations

import json
from uuid import uuid4

import httpx
import pytest

from reconciler.local.simulator import RunwareSimulator, SimulatorConfig
from reconciler.ports import RunwareCredentialsRejected
from reconciler.runware.client import RunwareClient

SECRET = "rw-secret-key-0123456789"


@pytest.mark.parametrize(
    ("status_code", "code", "meaning"),
    [
        (401, "invalidApiKey", "the API key is invalid"),
        (402, "insufficientCredits", "the account has no credit left"),
        (403, "forbidden", "the API key is not allowed to do this"),
    ],
)
async def test_rejection_is_raised_with_runware_reason(
    status_code: int, code: str, meaning: str
) -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        # A careless server might echo the key back: it must still not reach the message.
        body = {"errors": [{"code": code, "message": f"Rejected key {SECRET}"}]}
        return httpx.Response(status_code, json=body)

    transport = httpx.MockTransport(handler)
    async with RunwareClient("https://api.test/v1", SECRET, transport=transport) as client:
        with pytest.raises(RunwareCredentialsRejected) as caught:
            await client.get_statuses([str(uuid4())])

    message = str(caught.value)
    assert SECRET not in message
    assert f"HTTP {status_code}" in message
    assert meaning in message
    assert code in message
    assert len(requests) == 1  # never retried
    assert requests[0].headers["Authorization"] == f"Bearer {SECRET}"


async def test_rejection_without_a_body_still_explains() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(401, text="nope"))
    async with RunwareClient("https://api.test/v1", SECRET, transport=transport) as client:
        with pytest.raises(RunwareCredentialsRejected, match=r"HTTP 401: the API key is invalid"):
            await client.get_statuses([str(uuid4())])


async def test_one_rejected_batch_stops_all_batches_with_one_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        tasks = json.loads(request.content)
        if len(tasks) == 2:
            return httpx.Response(200, json={"data": []})
        return httpx.Response(403, json={"errors": [{"code": "forbidden"}]})

    transport = httpx.MockTransport(handler)
    client = RunwareClient(
        "https://api.test/v1", SECRET, transport=transport, batch_size=3, max_in_flight=1
    )
    async with client:
        with pytest.raises(RunwareCredentialsRejected):
            await client.get_statuses([str(uuid4()) for _ in range(8)])


async def test_simulator_rejects_a_wrong_key() -> None:
    async with RunwareSimulator(SimulatorConfig(api_key="the-right-key")) as sim:
        async with RunwareClient(sim.url, SECRET) as client:
            with pytest.raises(RunwareCredentialsRejected, match="invalidApiKey") as caught:
                await client.get_statuses([str(uuid4())])
        assert SECRET not in str(caught.value)
        assert sim.counters.requests_unauthorised == 1
        assert sim.counters.requests_total == 1
