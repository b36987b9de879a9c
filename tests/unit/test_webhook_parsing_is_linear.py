"""A webhook body is parsed in time linear in its items: the parse runs on the event loop, and a
quadratic one let a 256 KiB body of 12,483 tasks freeze every other request for 16 s.

Measured without a clock: the number of Python line events the parse executes (sys.settrace) is
the same on a loaded machine as on an idle one. Doubling the tasks doubles the work when it is
linear and quadruples it when it is quadratic."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from reconciler.runware.payloads import parse_webhook_body


def _line_events(body: Any) -> int:
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        parsed = parse_webhook_body(body)
    finally:
        sys.settrace(None)
    assert parsed is not None
    return count


def _body(tasks: int) -> dict[str, Any]:
    return {
        "data": [{"taskUUID": f"t{i}", "status": "processing"} for i in range(tasks)],
        "errors": [{"taskUUID": f"e{i}", "code": "timeoutProvider"} for i in range(tasks // 4)],
    }


def test_parsing_work_grows_linearly_with_the_tasks_named() -> None:
    small = _line_events(_body(300))
    large = _line_events(_body(600))
    assert large / small < 2.5, (small, large)


def test_several_items_for_one_task_still_resolve_the_first_success_first() -> None:
    body = {
        "data": [
            {"taskUUID": "a", "status": "processing", "progress": 40},
            {"taskUUID": "b", "status": "success", "videoURL": "https://vm.runware.ai/b.mp4"},
            {"taskUUID": "a", "status": "success", "videoURL": "https://vm.runware.ai/a1.mp4"},
            {"taskUUID": "a", "status": "success", "videoURL": "https://vm.runware.ai/a2.mp4"},
        ],
        "errors": [{"taskUUID": "c", "code": "timeoutProvider", "message": "slow"}],
    }
    parsed = parse_webhook_body(body)
    assert parsed is not None
    assert list(parsed) == ["a", "b", "c"]
    assert getattr(parsed["a"], "video_url", None) == "https://vm.runware.ai/a1.mp4"
    assert getattr(parsed["c"], "code", None) == "timeoutProvider"
