"""Logging set-up, in one place: `console` lines for people, `json` lines for log pipelines.

Both formats carry the request/job/project context (observability.context). The webhook
token never reaches a log: it travels in the query string, which no log line includes
(http/access_log.py), and uvicorn's own access log is off.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from reconciler.config import LogFormat
from reconciler.observability.context import current_context

_CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_HANDLER_NAME = "reconciler"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, and the context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **current_context(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # default=str: a message argument is already rendered, but context values need not be.
        return json.dumps(line, ensure_ascii=False, default=str)


class ConsoleFormatter(logging.Formatter):
    """The classic one-line format, with the context fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__(_CONSOLE_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = current_context()
        if not context:
            return text
        suffix = " ".join(f"{name}={value}" for name, value in context.items())
        first, newline, rest = text.partition("\n")  # keep tracebacks below the fields
        return f"{first} [{suffix}]{newline}{rest}"


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else ConsoleFormatter()


def configure_logging(level: str, log_format: LogFormat, stream: TextIO | None = None) -> None:
    """Route every logger (uvicorn's too: `serve` passes it no config) to one handler.

    Calling it again replaces the handler it installed before; handlers installed by others
    (pytest's capture, an embedding program's) are left alone.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter_for(log_format))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
