"""App data on the operator's terminal: shown as text, never acted on by the terminal or rich.

Clip keys and values are written by the app's users, reasons by Runware, and replica names and
feed states come out of the database; any of them can hold an ESC or C1 sequence (a screen
clear, an OSC 8 link that shows one URL and opens another, a title change), a bidi override
that reorders what follows, or rich markup (`[/oops]` stops the command, `[bold red]` restyles
the line). Every command prints such data through `terminal_text` (tables, lines, progress)
or, for `--json`, `terminal_json`: one rule, so no output path is forgotten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from reconciler.observability.logs import escape_unsafe


def terminal_text(value: object) -> Text:
    """`value` as text a terminal shows and never acts on: every control, bidi or invisible
    character written as an escape (`\\x1b`, `\\x9b`, `\\u202e`, `\\n`: the log lines' rule,
    observability/logs.py), and as rich Text rather than a markup string, so brackets and
    `:emoji:` codes stay as typed (markup escaping would still turn emoji codes into
    pictures, and doubles a trailing backslash)."""
    return Text(escape_unsafe(str(value)))


def terminal_json(value: object) -> str:
    """`value` as indented JSON that is safe to print: json.dumps escapes every control and
    non-ASCII character (`\\u001b`, `\\u202e`) but leaves DEL raw; it is escaped as well, so
    the output holds printable ASCII and line breaks only, and decodes to the same value."""
    return json.dumps(value, indent=2, ensure_ascii=True).replace("\x7f", "\\u007f")


# An id column is at least this wide (a UUID), and at most this wide however long a key is.
_ID_WIDTH = 36
_ID_WIDTH_MAX = 200
# Measuring a table's minimum width: as if the terminal had no edge.
_WIDEST = 100_000


def id_width(ids: Iterable[object]) -> int:
    """The width of a table column of ids shown whole, on one line: ids are there to be
    copied (into `status --project`, the admin search), so a narrow terminal never cuts one.
    Measured as `terminal_text` shows them (escapes included)."""
    return min(max([_ID_WIDTH, *(len(escape_unsafe(str(value))) for value in ids)]), _ID_WIDTH_MAX)


def print_whole(console: Console, table: Table) -> None:
    """Print `table` at least as wide as its columns' minimums, even on a terminal narrower
    than that: its id columns (`no_wrap`, `min_width=id_width(…)`) are never cut or folded;
    the terminal soft-wraps the long lines instead, which copies whole."""
    needed = Measurement.get(console, console.options.update_width(_WIDEST), table).minimum
    width = console.width
    if needed <= width:
        console.print(table)
        return
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width
