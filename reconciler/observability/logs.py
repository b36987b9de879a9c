"""Logging set-up, in one place: `console` lines for people, `json` lines for log pipelines.

Both formats carry the request/job/project context (observability.context). The formatters
are the last stop before a line is written, for every logger (ours, uvicorn's, websockets',
httpx's), so two guarantees live here:

- No secret is written: the rendered message, exception text and context values go through a
  `Redactor` (reconciler/redaction.py) that knows the configured secrets. (The webhook token
  also stays out by construction: the access log leaves query strings out.)
- No caller can forge a line: paths, job ids and the like end up in messages and context, so
  line breaks and other control characters are escaped — in the console format by writing them
  as `\\n`, `\\x1b`…; in the JSON format json.dumps escapes most, and the few it leaves raw
  that line splitters still break on (U+2028, U+0085…) are written as `\\uXXXX` escapes, which
  decode to the same string.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from reconciler.config import LogFormat
from reconciler.observability.context import current_context
from reconciler.redaction import Redactor

_HANDLER_NAME = "reconciler"

# C0 and C1 controls (line feeds, carriage returns, terminal escapes…), Unicode line and
# paragraph separators, and the invisible format characters that reorder or hide text: the
# soft hyphen (U+00AD), the Arabic letter mark (U+061C, a bidi mark), the Mongolian vowel
# separator (U+180E), zero-width spaces, joiners and bidi marks (U+200B-U+200F), embeddings
# and overrides (U+202A-U+202E), isolates and invisible operators (U+2060-U+206F), the byte
# order mark (U+FEFF), interlinear annotation marks (U+FFF9-U+FFFB, which hide the text they
# enclose) and tag characters (U+E0000-U+E007F, invisible ASCII look-alikes).
UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0xAD, 0xAD),
    (0x061C, 0x061C),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xE0000, 0xE007F),
)
_UNSAFE = re.compile(
    "[" + "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in UNSAFE_RANGES) + "]"
)
_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _json_escape(match: re.Match[str]) -> str:
    """The JSON escape of one character: a UTF-16 surrogate pair beyond U+FFFF (tags)."""
    code = ord(match.group())
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def unsafe_pattern_for_javascript() -> str:
    """The same set as a JavaScript regular expression (for the `u` flag): the admin page's
    script escapes what it inserts with it (reconciler/http/static/escape.js)."""
    return "[" + "".join(f"\\u{{{first:x}}}-\\u{{{last:x}}}" for first, last in UNSAFE_RANGES) + "]"


def one_line(text: str) -> str:
    """A multi-line message (PostgreSQL's `ERROR …\nHINT: …`) as one line, its lines joined by
    "; ": an error reads the same in a terminal, a log line and a JSON field, without the
    literal `\n` escape_unsafe would otherwise write for each break."""
    if "\n" not in text and "\r" not in text:
        return text
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


def escape_unsafe(text: str) -> str:
    """`text` on one line, every control or invisible character written as an escape."""
    return _UNSAFE.sub(_escape_char, text) if _UNSAFE.search(text) else text


def _json_escape_unsafe(line: str) -> str:
    """JSON escapes for what json.dumps(ensure_ascii=False) leaves raw (it already escapes
    everything below U+0020): the same value, but no line splitter can cut it."""
    return _UNSAFE.sub(_json_escape, line) if _UNSAFE.search(line) else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, and the context fields."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact if redact is not None else Redactor()

    def format(self, record: logging.LogRecord) -> str:
        redact = self._redact
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            **{name: redact(value) for name, value in current_context().items()},
        }
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return _json_escape_unsafe(json.dumps(line, ensure_ascii=False))


class ConsoleFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message> [context]`, one line per record; a traceback follows
    on lines of its own, each indented, so that every line starting in the first column is the
    start of a record and nothing a caller sends can pose as one."""

    def __init__(self, redact: Redactor | None = None) -> None:
        super().__init__()
        self._redact = redact if redact is not None else Redactor()

    def _clean(self, text: str) -> str:
        return escape_unsafe(self._redact(text))

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{self.formatTime(record)} {record.levelname} {record.name} "
            f"{self._clean(record.getMessage())}"
        )
        context = current_context()
        if context:
            fields = " ".join(f"{name}={self._clean(value)}" for name, value in context.items())
            line = f"{line} [{fields}]"
        blocks: list[str] = []
        if record.exc_info:
            blocks.append(self.formatException(record.exc_info))
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            for block_line in self._redact(block).split("\n"):
                if block_line:
                    line += "\n" + _indented(escape_unsafe(block_line))
        return line


def _indented(line: str) -> str:
    return line if line.startswith(" ") else f"  {line}"


def formatter_for(log_format: LogFormat, secrets: Iterable[str] = ()) -> logging.Formatter:
    redact = Redactor(secrets)
    return JsonFormatter(redact) if log_format == "json" else ConsoleFormatter(redact)


_CHATTY_HTTP_LOGGERS = ("httpx", "httpcore")


def configure_logging(
    level: str, log_format: LogFormat, stream: TextIO | None = None, secrets: Iterable[str] = ()
) -> None:
    """Route every logger (uvicorn's too: `serve` passes it no config) to one handler, whose
    formatter masks `secrets` (Settings.secrets) and every credential pattern it knows.

    Calling it again replaces the handler it installed before; handlers installed by others
    (pytest's capture, an embedding program's) are left alone.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter_for(log_format, secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # httpx logs every request at INFO (one line per Runware call, per Storage upload): noise
    # at the default level. Their warnings still show; at debug everything does.
    chatty = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in _CHATTY_HTTP_LOGGERS:
        logging.getLogger(name).setLevel(chatty)
