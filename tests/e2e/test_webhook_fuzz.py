"""Property test: generated webhook bodies — valid, truncated, wrong types, huge numbers,
unicode, nested junk — never produce a 5xx, and nothing is written without a valid token."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET, RunningService, ServiceFactory

JOBS = [J.fz_1, J.fz_2, J.fz_3]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from([*JOBS, "success", "error", "processing", bodies.video_url("fz")]),
)
json_values = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
item_fields = st.fixed_dictionaries(
    {},
    optional={
        "taskUUID": st.one_of(st.sampled_from(JOBS), json_leaf),
        "status": st.one_of(st.sampled_from(["success", "error", "processing"]), json_leaf),
        "videoURL": st.one_of(
            st.just(bodies.video_url("fz")), st.just("http://x.example/v.mp4"), json_leaf
        ),
        "videoUUID": json_leaf,
        "code": json_leaf,
        "message": json_leaf,
        "error": json_values,
        "progress": json_leaf,
    },
)
envelopes = st.one_of(
    item_fields,
    st.builds(lambda items: {"data": items}, st.lists(item_fields, max_size=3)),
    st.builds(lambda items: {"errors": items}, st.lists(item_fields, max_size=3)),
    st.builds(lambda item: {"error": item}, item_fields),
    json_values,
)


@pytest.fixture
async def fuzz_target(
    service_env: dict[str, str], run_service: ServiceFactory, db: asyncpg.Connection
) -> Any:
    await db.execute(
        "insert into public.projects (clips) values ($1)", dict.fromkeys(JOBS, "pending")
    )
    async with run_service(service_env) as url, httpx.AsyncClient(timeout=30) as client:
        yield f"{RunningService(url, '', 'postgres').url}/webhooks/runware", db, client


_STATE = (
    "select (select xmin::text from public.projects),"
    " (select count(*) from reconciler.parked_results)"
)


def _encode(body: Any, cut: int | None) -> bytes:
    raw = json.dumps(body).encode()
    return raw[:cut] if cut is not None else raw


@settings(
    max_examples=1100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=envelopes,
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=200)),
    token=st.sampled_from([WEBHOOK_SECRET, None, "wrong-but-long-enough-token"]),
)
async def test_generated_bodies(
    fuzz_target: tuple[str, asyncpg.Connection, httpx.AsyncClient],
    body: Any,
    cut: int | None,
    token: str | None,
) -> None:
    url, db, client = fuzz_target
    trusted = token == WEBHOOK_SECRET
    before = None if trusted else await db.fetchrow(_STATE)
    query = {} if token is None else {"token": token}

    response = await client.post(
        url, content=_encode(body, cut), params=query, headers={"content-type": "application/json"}
    )

    assert response.status_code < 500, response.text
    if not trusted:
        assert response.status_code == 401
        assert await db.fetchrow(_STATE) == before
