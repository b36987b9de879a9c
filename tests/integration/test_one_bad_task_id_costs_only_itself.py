"""A getResponse batch Runware refuses as a whole because of one bad task id is split, so the
other tasks in it still get their statuses and the bad id costs a bounded number of requests."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from uuid import uuid4

import httpx

from reconciler.clips import CheckError, Failed, Processing
from reconciler.runware.client import RunwareClient

API_KEY = "sim-key"
BATCH = 50
# The client isolates up to two bad ids per refused batch (REFUSED_BATCH_BAD_IDS_ISOLATED).
BAD_IDS_ISOLATED = 2


def asked(request: httpx.Request) -> list[str]:
    return [task["taskUUID"] for task in json.loads(request.content)]


def processing(task_uuid: str) -> dict[str, object]:
    return {"taskType": "videoInference", "taskUUID": task_uuid, "status": "processing"}


def refusing(
    bad: set[str], requests: list[list[str]], *, name_it: bool = False
) -> Callable[[httpx.Request], httpx.Response]:
    """Runware as it might be: any request holding a bad id is refused whole with a 400."""

    def handler(request: httpx.Request) -> httpx.Response:
        tasks = asked(request)
        requests.append(tasks)
        named = [u for u in tasks if u in bad]
        if named:
            error: dict[str, object] = {"code": "invalidTaskUUID", "message": "bad taskUUID"}
            if name_it:
                error["taskUUID"] = named[0]
            return httpx.Response(400, json={"errors": [error]})
        return httpx.Response(200, json={"data": [processing(u) for u in tasks]})

    return handler


async def test_a_batch_refused_whole_for_one_id_still_answers_the_others() -> None:
    bad = str(uuid4())
    good = [str(uuid4()) for _ in range(BATCH - 1)]
    batch = [*good[:17], bad, *good[17:]]
    requests: list[list[str]] = []
    transport = httpx.MockTransport(refusing({bad}, requests))
    async with RunwareClient(
        "https://api.test/v1", API_KEY, batch_size=BATCH, transport=transport
    ) as client:
        statuses = await client.get_statuses(batch)

    assert all(statuses[u] == Processing() for u in good)
    assert isinstance(statuses[bad], CheckError)
    # The whole request, then two per halving down to the bad id alone.
    assert len(requests) <= 1 + 2 * math.ceil(math.log2(BATCH))
    assert sum(1 for r in requests if bad in r) <= 1 + math.ceil(math.log2(BATCH))


async def test_a_refusal_naming_the_bad_id_asks_the_rest_again_together() -> None:
    bad = str(uuid4())
    good = [str(uuid4()) for _ in range(BATCH - 1)]
    requests: list[list[str]] = []
    transport = httpx.MockTransport(refusing({bad}, requests, name_it=True))
    async with RunwareClient(
        "https://api.test/v1", API_KEY, batch_size=BATCH, transport=transport
    ) as client:
        statuses = await client.get_statuses([bad, *good])

    assert requests == [[bad, *good], good]
    assert all(statuses[u] == Processing() for u in good)
    assert isinstance(statuses[bad], Failed)


async def test_refusing_every_request_costs_a_bounded_number_of_requests() -> None:
    everyone = [str(uuid4()) for _ in range(BATCH)]
    requests: list[list[str]] = []
    transport = httpx.MockTransport(refusing(set(everyone), requests))
    async with RunwareClient(
        "https://api.test/v1", API_KEY, batch_size=BATCH, transport=transport
    ) as client:
        statuses = await client.get_statuses(everyone)

    assert all(isinstance(statuses[u], CheckError) for u in everyone)
    bound = 1 + 2 * math.ceil(math.log2(BATCH)) * BAD_IDS_ISOLATED
    assert len(requests) <= bound
