"""Whatever comes back, every asked task gets a status and nothing crashes."""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.clips import CheckError, Failed, Processing, Succeeded, UnknownTask
from reconciler.ports import RunwareCredentialsRejected
from reconciler.runware.client import RunwareClient

UUIDS = [str(uuid4()) for _ in range(3)]


async def no_sleep(seconds: float) -> None:
    return None


async def statuses_for(status_code: int, content: bytes) -> dict[str, Any]:
    transport = httpx.MockTransport(lambda request: httpx.Response(status_code, content=content))
    client = RunwareClient(
        "https://api.test/v1", "key", transport=transport, sleep=no_sleep, max_retries=1
    )
    async with client:
        return dict(await client.get_statuses(UUIDS))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json at all",
        b"\xff\xfe\x00garbage",
        b"null",
        b"42",
        b'"data"',
        b"{}",
        b'{"unrelated": true}',
        b"<html><body>502 Bad Gateway</body></html>",
    ],
)
async def test_unreadable_answer_is_a_check_error_for_the_batch(content: bytes) -> None:
    statuses = await statuses_for(200, content)
    assert set(statuses) == set(UUIDS)
    assert all(isinstance(s, CheckError) for s in statuses.values())


@pytest.mark.parametrize(
    "body",
    [
        {"data": "nope"},
        {"data": [1, "two", None, [], {}]},
        {"data": [{"taskUUID": 5, "status": []}], "errors": "x"},
        {"errors": {"taskUUID": None}},
        {"data": [{"taskUUID": UUIDS[0], "status": "success", "videoURL": 17}]},
        {"data": [{"taskUUID": UUIDS[0], "error": ["weird"], "status": "error"}]},
        {"data": [{"taskUUID": UUIDS[0], "progress": 1e400}]},
        [{"taskUUID": UUIDS[1], "status": "processing"}],
    ],
)
async def test_malformed_items_are_skipped_not_fatal(body: Any) -> None:
    statuses = await statuses_for(200, json.dumps(body).encode())
    assert set(statuses) == set(UUIDS)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.sampled_from([*UUIDS, "success", "error", "processing", "taskNotFound"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "data",
                    "errors",
                    "error",
                    "taskUUID",
                    "status",
                    "videoURL",
                    "code",
                    "message",
                    "progress",
                    "videoUUID",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status_code=st.sampled_from([200, 400, 404, 500, 401]), body=json_values)
async def test_any_json_answer_gives_a_status_per_task(status_code: int, body: Any) -> None:
    try:
        statuses = await statuses_for(status_code, json.dumps(body).encode())
    except RunwareCredentialsRejected:
        assert status_code == 401
        return
    assert set(statuses) == set(UUIDS)
    kinds = (Processing, Succeeded, Failed, UnknownTask, CheckError)
    assert all(isinstance(s, kinds) for s in statuses.values())
