"""Per-request and per-job log context, carried in contextvars.

asyncio copies the context into each task it creates, so a value set around a piece of work is
seen by every log line that work emits, and by nothing running concurrently beside it.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

CONTEXT_FIELDS = ("request_id", "job_id", "project_id")

_fields: dict[str, ContextVar[str | None]] = {
    name: ContextVar(f"reconciler_{name}", default=None) for name in CONTEXT_FIELDS
}

# An incoming X-Request-ID ends up in log lines: accept only short, plain tokens, so a caller
# cannot forge log lines or flood them.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def request_id_from(header: str | None) -> str:
    """The caller's request id when it is a sane short token, else a fresh one."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def current_context() -> dict[str, str]:
    """The fields known here and now (unset ones are left out)."""
    return {name: value for name, var in _fields.items() if (value := var.get()) is not None}


@contextlib.contextmanager
def log_context(
    *, request_id: str | None = None, job_id: str | None = None, project_id: object = None
) -> Iterator[None]:
    """Add fields to every log line emitted inside the block; None leaves a field as it was."""
    given = {"request_id": request_id, "job_id": job_id, "project_id": project_id}
    tokens = [
        (_fields[name], _fields[name].set(str(value)))
        for name, value in given.items()
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
