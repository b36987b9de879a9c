"""Runware's JSON payloads, parsed tolerantly: API answers and webhook bodies share one model.

Fields are optional and loosely typed: an item that still does not fit is skipped (its task then
counts as omitted), never a crash. Extra fields are ignored. Shapes: docs/runware-api.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from reconciler.clips import CheckError, Processing, Succeeded, TaskStatus, status_from_error


def _loose_str(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _loose_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except (ValueError, OverflowError):
            return None
    return None


LooseStr = Annotated[str | None, BeforeValidator(_loose_str)]
LooseInt = Annotated[int | None, BeforeValidator(_loose_int)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _NestedError(_Model):
    code: LooseStr = None
    message: LooseStr = None


def _nested_error(value: Any) -> Any:
    # Seen as an object; tolerate a bare string (a message) or anything else (ignored).
    if isinstance(value, str):
        return {"message": value}
    return value if isinstance(value, dict) else None


class Item(_Model):
    """A `data[]` item, an `errors[]` entry or a singular `error`: the union of their fields."""

    taskUUID: LooseStr = None
    status: LooseStr = None
    progress: LooseInt = None
    videoURL: LooseStr = None
    videoUUID: LooseStr = None
    code: LooseStr = None
    message: LooseStr = None
    error: Annotated[_NestedError | None, BeforeValidator(_nested_error)] = None

    @property
    def error_code(self) -> str | None:
        return self.code or (self.error.code if self.error else None)

    @property
    def error_message(self) -> str | None:
        return self.message or (self.error.message if self.error else None)


def _items(value: Any) -> list[Item]:
    """Parse a list of items (or one item), skipping entries that are not objects."""
    raw = value if isinstance(value, list) else [value]
    items: list[Item] = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        try:
            items.append(Item.model_validate(entry))
        except ValidationError:
            continue
    return items


@dataclass(frozen=True)
class Envelope:
    data: list[Item] = field(default_factory=list)
    errors: list[Item] = field(default_factory=list)

    @classmethod
    def parse(cls, body: Any) -> Envelope | None:
        """None when the body is not a Runware envelope at all."""
        if isinstance(body, list):  # not documented; read a bare array as `data`
            return cls(data=_items(body))
        if not isinstance(body, dict) or not body.keys() & {"data", "errors", "error"}:
            return None
        errors = _items(body.get("errors", []))
        if "error" in body:
            errors += _items(body["error"])
        return cls(data=_items(body.get("data", [])), errors=errors)

    def unattributed_errors(self) -> list[Item]:
        return [e for e in self.errors if not e.taskUUID]

    def named_tasks(self) -> set[str]:
        return {i.taskUUID for i in [*self.data, *self.errors] if i.taskUUID}


def describe_errors(errors: Iterable[Item]) -> str:
    parts = []
    for error in errors:
        code, message = error.error_code, error.error_message
        parts.append(": ".join(p for p in (code, message) if p))
    return "; ".join(p for p in parts if p)


# --- Interpreting one task's items --------------------------------------------------------------


def task_status(data: list[Item], errors: list[Item]) -> TaskStatus:
    """Several items for one task are its cumulative results: any success wins, first first."""
    for item in data:
        if item.status == "success" and item.videoURL:
            return Succeeded(item.videoURL, item.videoUUID)
    failures = [i for i in data if i.status == "error"] + errors
    if failures:
        return status_from_error(failures[0].error_code, failures[0].error_message)
    if any(item.status == "success" for item in data):
        return CheckError("Runware reported success without a video URL")
    # processing, pending, queued, a status never seen before, or none at all: not terminal.
    progress = [i.progress for i in data if i.progress is not None]
    return Processing(max(progress) if progress else None)


def _by_task(items: Iterable[Item]) -> dict[str, list[Item]]:
    grouped: dict[str, list[Item]] = {}
    for item in items:
        if item.taskUUID:
            grouped.setdefault(item.taskUUID, []).append(item)
    return grouped


def statuses_named(envelope: Envelope, wanted: Sequence[str]) -> dict[str, TaskStatus]:
    """The status of each wanted task the answer names; omitted tasks are left out.

    Items are grouped by task once: matching each wanted task against every item was
    quadratic, and a 256 KiB webhook body of 12,483 tasks then held the event loop for 16 s."""
    data, errors = _by_task(envelope.data), _by_task(envelope.errors)
    return {
        task_uuid: task_status(data.get(task_uuid, []), errors.get(task_uuid, []))
        for task_uuid in wanted
        if task_uuid in data or task_uuid in errors
    }


class TooManyTasks(ValueError):
    """A webhook body names more tasks than one request may carry."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"body names {count} tasks; at most {limit} per body")
        self.count = count
        self.limit = limit


def parse_webhook_body(body: Any, max_tasks: int | None = None) -> dict[str, TaskStatus] | None:
    """Each task a webhook body names, with what it says of it; None if nothing names a task.

    Accepts the flat item, `{"data": […]}`, `{"errors": […]}` and `{"error": …}` (sources
    disagree on the shape). Several items for one task resolve as in API answers: the first
    success wins. Raises TooManyTasks past `max_tasks` distinct tasks, before any is looked at.
    """
    if isinstance(body, dict) and "taskUUID" in body:
        # A flat item, possibly with a nested `error` object (the second error form).
        envelope: Envelope | None = Envelope(data=_items(body))
    else:
        envelope = Envelope.parse(body)
    if envelope is None:
        return None
    tasks = list(
        dict.fromkeys(i.taskUUID for i in [*envelope.data, *envelope.errors] if i.taskUUID)
    )
    if max_tasks is not None and len(tasks) > max_tasks:
        raise TooManyTasks(len(tasks), max_tasks)
    return statuses_named(envelope, tasks) or None
