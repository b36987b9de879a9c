"""W5 webhook parse: the worst-case time to parse one webhook body, on the event loop.

The worst body is the largest the byte cap lets through, packed with the shortest distinct task
ids (`{"taskUUID":"1"}`, …): the most items per byte. It is parsed twice side by side: by the
service's parser (items grouped by task once, then the task cap refuses the body) and by the
0.1 matcher kept here as the baseline (each task matched against every item: quadratic), which
held the event loop — and every other request — for 16.7 s on such a body. A body of exactly
`RECONCILER_WEBHOOK_MAX_TASKS` tasks, the largest that is accepted, is timed too.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence

from bench.context import BenchContext
from bench.report import Outcome, Row, fmt, fmt_ratio
from reconciler.clips import TaskStatus
from reconciler.config import DEFAULTS
from reconciler.runware.payloads import (
    Envelope,
    TooManyTasks,
    parse_webhook_body,
    task_status,
)

# The service's defaults (RECONCILER_WEBHOOK_MAX_BYTES, RECONCILER_WEBHOOK_MAX_TASKS).
MAX_BYTES = DEFAULTS.webhook_max_bytes
MAX_TASKS = DEFAULTS.webhook_max_tasks
# The target: a maximal body is refused in less time than one frame of a 60 Hz screen.
TARGET_SECONDS = 0.1


def maximal_body(max_bytes: int, tasks: int | None = None) -> bytes:
    """A JSON array of `{"taskUUID":"<n>"}` items, as many as fit in `max_bytes`."""
    items: list[str] = []
    size = 2  # the brackets
    n = 0
    while tasks is None or n < tasks:
        item = json.dumps({"taskUUID": str(n)}, separators=(",", ":"))
        if size + len(item) + 1 > max_bytes:
            break
        items.append(item)
        size += len(item) + 1
        n += 1
    return ("[" + ",".join(items) + "]").encode()


def _quadratic_statuses_named(envelope: Envelope, wanted: Sequence[str]) -> dict[str, TaskStatus]:
    """The 0.1 matcher, for comparison only."""
    named = envelope.named_tasks()
    return {
        task: task_status(
            [i for i in envelope.data if i.taskUUID == task],
            [e for e in envelope.errors if e.taskUUID == task],
        )
        for task in wanted
        if task in named
    }


def _parse_0_1(raw: bytes) -> None:
    envelope = Envelope.parse(json.loads(raw))
    assert envelope is not None
    tasks = list(dict.fromkeys(i.taskUUID for i in envelope.data if i.taskUUID))
    _quadratic_statuses_named(envelope, tasks)


def _parse_now(raw: bytes) -> None:
    with contextlib.suppress(TooManyTasks):  # the service answers 413 here
        parse_webhook_body(json.loads(raw), MAX_TASKS)


def _best_of(runs: int, parse: Callable[[bytes], None], raw: bytes) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        parse(raw)
        best = min(best, time.perf_counter() - started)
    return best


async def run(ctx: BenchContext) -> Outcome:
    # --quick shrinks the body for the baseline only: the quadratic parse of a full body takes
    # seconds, and the quick run exists to show the workload works.
    baseline_bytes = MAX_BYTES // 8 if ctx.quick else MAX_BYTES
    worst = maximal_body(MAX_BYTES)
    baseline_body = maximal_body(baseline_bytes)
    accepted = maximal_body(MAX_BYTES, MAX_TASKS)
    items = worst.count(b"taskUUID")
    baseline_items = baseline_body.count(b"taskUUID")
    ctx.say(f"W5: {items:,} tasks in {len(worst):,} bytes")
    runs = 3 if ctx.quick else 7
    worst_seconds = _best_of(runs, _parse_now, worst)
    accepted_seconds = _best_of(runs, _parse_now, accepted)
    baseline_now = _best_of(runs, _parse_now, baseline_body)
    baseline_0_1 = _best_of(1, _parse_0_1, baseline_body)
    ratio = baseline_0_1 / baseline_now if baseline_now > 0 else float("nan")
    met = worst_seconds <= TARGET_SECONDS
    outcome = Outcome(
        "W5",
        "webhook parse",
        params={
            "max_bytes": MAX_BYTES,
            "max_tasks": MAX_TASKS,
            "worst_body_tasks": items,
            "baseline_body_tasks": baseline_items,
            "runs": runs,
        },
        figures={
            "worst_body_parse_seconds": round(worst_seconds, 4),
            "max_tasks_body_parse_seconds": round(accepted_seconds, 4),
            "baseline_body_parse_seconds": round(baseline_now, 4),
            "baseline_body_parse_seconds_0_1": round(baseline_0_1, 4),
        },
        ratios={"0_1_over_now": round(ratio, 1)},
        targets={"worst_body_parse_seconds": TARGET_SECONDS, "met": met},
    )
    outcome.rows = [
        Row(
            f"maximal body ({items:,} tasks, refused)",
            fmt(worst_seconds * 1000, " ms"),
            target=f"≤ {TARGET_SECONDS * 1000:.0f} ms",
            met=met,
        ),
        Row(f"{MAX_TASKS:,}-task body (accepted)", fmt(accepted_seconds * 1000, " ms")),
        Row(
            f"{baseline_items:,} tasks: now vs 0.1 matcher",
            fmt(baseline_now * 1000, " ms"),
            fmt(baseline_0_1 * 1000, " ms"),
            fmt_ratio(ratio),
        ),
    ]
    return outcome
