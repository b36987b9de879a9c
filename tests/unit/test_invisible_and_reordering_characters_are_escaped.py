"""Characters that are invisible or reorder the text around them reach log lines, the
operator's terminal and the admin page only as visible escapes: the one escape set in
observability/logs.py covers the soft hyphen, the Arabic letter mark, the Mongolian vowel
separator, the interlinear annotation marks and the tag characters besides the controls and
bidi overrides. Ordinary text of any script is left as it is."""

from __future__ import annotations

import io
import json
import logging

import pytest

from reconciler.observability.logs import ConsoleFormatter, JsonFormatter, escape_unsafe
from reconciler.operator.terminal import terminal_text

HIDDEN = {
    "\u00ad": "\\xad",  # soft hyphen
    "\u061c": "\\u061c",  # Arabic letter mark (a bidi mark)
    "\u180e": "\\u180e",  # Mongolian vowel separator
    "\ufff9": "\\ufff9",  # interlinear annotation anchor
    "\ufffa": "\\ufffa",  # … separator
    "\ufffb": "\\ufffb",  # … terminator
    "\U000e0000": "\\U000e0000",  # first tag character
    "\U000e0001": "\\U000e0001",  # language tag
    "\U000e0041": "\\U000e0041",  # tag LATIN CAPITAL A: an invisible "A"
    "\U000e007f": "\\U000e007f",  # cancel tag
    # Covered before; here so the set stays whole.
    "\u202e": "\\u202e",
    "\u2066": "\\u2066",
    "\x1b": "\\x1b",
    "\x9b": "\\x9b",
}
ORDINARY = "job é ü ß 日本 عربي עברית 🎬 \u00ac\u00ae \u0600 \U000e0100 ok"


@pytest.mark.parametrize("char", list(HIDDEN), ids=[f"U+{ord(c):04X}" for c in HIDDEN])
def test_each_hidden_character_is_written_as_a_visible_escape(char: str) -> None:
    shown = escape_unsafe(f"a{char}b")
    assert shown == f"a{HIDDEN[char]}b"
    assert terminal_text(f"a{char}b").plain == shown


def test_ordinary_text_of_any_script_is_left_as_it_is() -> None:
    assert escape_unsafe(ORDINARY) == ORDINARY


def _formatted(formatter: logging.Formatter, message: str) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    record = logging.LogRecord("test", logging.WARNING, __file__, 1, message, None, None)
    handler.emit(record)
    return stream.getvalue()


def test_log_lines_carry_no_hidden_character_raw() -> None:
    message = "job " + "".join(HIDDEN) + " done"
    console = _formatted(ConsoleFormatter(), message)
    as_json = _formatted(JsonFormatter(), message)
    for line in (console, as_json):
        assert not any(char in line for char in HIDDEN)
        assert line.count("\n") == 1
    # The JSON line's escapes (a surrogate pair for a tag character) decode to the message.
    assert json.loads(as_json)["message"] == message
