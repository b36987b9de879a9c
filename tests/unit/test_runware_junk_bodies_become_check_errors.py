"""Whatever bytes Runware answers with (JSON of any shape, binary, nesting deep enough to exhaust
the JSON decoder's recursion), every asked task gets a status and no exception escapes; an
answer that cannot be read at all is a CheckError for each task."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.clips import CheckError, Failed, Processing, Succeeded, UnknownTask
from tests.unit.test_runware_client_survives_junk_answers import UUIDS, statuses_for

STATUS_KINDS = (Processing, Succeeded, Failed, UnknownTask, CheckError)
# 401/402/403 are left out: they deliberately raise RunwareCredentialsRejected.
ANSWER_STATUSES = [200, 400, 404, 429, 500, 503]


@pytest.mark.parametrize("status_code", [200, 400, 500])
@pytest.mark.parametrize(
    "content",
    [
        b"[" * 5_000,
        b"[" * 100_000,
        b'{"data": ' + b"[" * 5_000,
        b'{"data": [{"taskUUID": ' * 2_000,
        b'{"errors": [{"error": ' * 2_000,
    ],
    ids=["arrays", "arrays-100k", "under-data", "under-task", "under-error"],
)
async def test_deeply_nested_answer_is_a_check_error_per_task(
    status_code: int, content: bytes
) -> None:
    statuses = await statuses_for(status_code, content)

    assert set(statuses) == set(UUIDS)
    assert all(isinstance(s, CheckError) for s in statuses.values())


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([*UUIDS, "success", "error", "processing", "taskNotFound"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["data", "errors", "error", "taskUUID", "status", "videoURL", "code", "message"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
answers = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.builds(
        lambda opening, depth: opening * depth,
        st.sampled_from([b"[", b'{"data": ', b'{"error": ', b'[{"taskUUID": [']),
        st.integers(min_value=1, max_value=20_000),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status_code=st.sampled_from(ANSWER_STATUSES), content=answers)
async def test_any_answer_gives_a_status_per_task(status_code: int, content: bytes) -> None:
    statuses = await statuses_for(status_code, content)

    assert set(statuses) == set(UUIDS)
    assert all(isinstance(s, STATUS_KINDS) for s in statuses.values())
