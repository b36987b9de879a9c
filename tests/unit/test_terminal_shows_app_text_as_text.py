"""App data on the operator's terminal (operator/terminal.py): clip keys, values, reasons,
replica names and feed states hold whatever the app's users or Runware wrote. Printed through
`terminal_text` they reach the terminal as visible escapes and literal brackets: no escape
sequence the terminal would act on, no rich markup that restyles or stops the output. The
status and check tables print every text field that way, including fields added later."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import typing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from rich.console import Console, RenderableType

from reconciler.cli_output import render_check
from reconciler.operator.render import render_overview, render_project
from reconciler.operator.terminal import terminal_json, terminal_text
from reconciler.operator.views import (
    AgeBucket,
    ClipView,
    Overview,
    ProjectView,
    RecentFailure,
    ReplicaView,
    StuckJob,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# C0 controls but the line feed, DEL, C1 controls, bidi embeddings, overrides and isolates.
RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Everything at once: a screen clear, an 8-bit CSI, an OSC 8 link, a bidi override, NUL, DEL,
# and markup that would stop rich (`[/oops]`) or restyle the line.
HOSTILE = (
    "[/oops]\x1b[2J\x9b31m\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
    "\u202eeulav\x00\x7f[bold red]alarm[/bold red]"
)
HOSTILE_SHOWN = (
    "[/oops]\\x1b[2J\\x9b31m\\x1b]8;;https://evil.example/\\x1b\\click\\x1b]8;;\\x1b\\"
    "\\u202eeulav\\x00\\x7f[bold red]alarm[/bold red]"
)


def terminal_output(renderable: RenderableType | Callable[[Console], None]) -> str:
    """What a colour terminal receives, escape sequences included."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system="truecolor", width=1000)
    if callable(renderable):
        renderable(console)
    else:
        console.print(renderable)
    return out.getvalue()


def plain_output(render: Callable[[Console], None]) -> str:
    """What a terminal receives with colours off: any escape sequence in it came from data."""
    out = io.StringIO()
    render(Console(file=out, force_terminal=True, color_system=None, width=1000))
    return out.getvalue()


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        pytest.param("\x1b[2J", "\\x1b[2J", id="ESC: clear the screen"),
        pytest.param("\x1b[31mred", "\\x1b[31mred", id="CSI: colour"),
        pytest.param(
            "\x1b]8;;https://evil.example/\x1b\\https://vm.runware.ai/v.mp4\x1b]8;;\x1b\\",
            "\\x1b]8;;https://evil.example/\\x1b\\https://vm.runware.ai/v.mp4\\x1b]8;;\\x1b\\",
            id="OSC 8: a link that opens another URL",
        ),
        pytest.param("\x9b2J", "\\x9b2J", id="C1: 8-bit CSI"),
        pytest.param("\x9d0;title\x9c", "\\x9d0;title\\x9c", id="C1: 8-bit OSC and ST"),
        pytest.param("job\x00id", "job\\x00id", id="NUL"),
        pytest.param("job\x7fid", "job\\x7fid", id="DEL"),
        pytest.param("\x07\x08\r", "\\x07\\x08\\r", id="bell, backspace, carriage return"),
        pytest.param("two\nlines", "two\\nlines", id="line feed"),
        pytest.param("\u202e4pm.exe", "\\u202e4pm.exe", id="bidi override"),
        pytest.param("\u2067x\u2069", "\\u2067x\\u2069", id="bidi isolate"),
        pytest.param("a\u200bb", "a\\u200bb", id="zero-width space"),
        pytest.param("[/oops]", "[/oops]", id="markup: a closing tag"),
        pytest.param("[bold red]alarm[/bold red]", "[bold red]alarm[/bold red]", id="markup"),
        pytest.param("[link=https://evil.example]x[/link]", "[link=https://evil.example]x[/link]"),
        pytest.param(":thumbs_up:", ":thumbs_up:", id="emoji code"),
        pytest.param("C:\\dir\\", "C:\\dir\\", id="a trailing backslash"),
        pytest.param("\\[bold]x", "\\[bold]x", id="an escaped bracket"),
        pytest.param("ünïcödé 視頻", "ünïcödé 視頻", id="printable text as it is"),
    ],
)
def test_app_text_reaches_the_terminal_as_visible_text(raw: str, shown: str) -> None:
    written = terminal_output(terminal_text(raw))

    # Nothing else is written: no colour, no style, no sequence of any kind.
    assert written == shown + "\n"


def test_a_value_of_any_type_is_shown_as_its_text() -> None:
    assert terminal_output(terminal_text(None)) == "None\n"
    assert terminal_output(terminal_text(42)) == "42\n"


def test_json_output_holds_no_control_character_and_decodes_to_the_same_value() -> None:
    value = {"clips": {HOSTILE: "pending"}, "reason": "\u2028\x85é"}

    printed = terminal_json(value)

    assert not RAW_CONTROLS.search(printed)
    assert printed.isascii()
    assert json.loads(printed) == value


def _hostile(cls: Any, **values: Any) -> Any:
    """An instance of the view dataclass `cls` with every text field set to HOSTILE: a text
    field added to a view later is covered without touching this test."""
    hints = typing.get_type_hints(cls)
    texts = {
        field.name: HOSTILE
        for field in dataclasses.fields(cls)
        if field.name not in values and hints[field.name] in (str, str | None)
    }
    return cls(**values, **texts)


def _overview() -> Overview:
    return Overview(
        generated_at=NOW,
        replicas=[
            _hostile(
                ReplicaView,
                started_at=NOW - timedelta(hours=3),
                last_seen_at=NOW - timedelta(seconds=40),
                leases_held=4,
                last_sweep_at=None,
                alive=True,
            )
        ],
        age_buckets=[AgeBucket(HOSTILE, 2)],
        oldest=[
            _hostile(
                StuckJob,
                project_id=uuid4(),
                first_seen_at=NOW - timedelta(hours=1),
                attempts=12,
                next_check_at=NOW + timedelta(seconds=90),
                progress=60,
            )
        ],
        failures_24h=[
            _hostile(RecentFailure, project_id=uuid4(), settled_at=NOW - timedelta(minutes=3))
        ],
        failure_reasons_24h=[(HOSTILE, 1)],
        parked_results=5,
        archive_backlog=None,
    )


def _project_view() -> ProjectView:
    pending = _hostile(
        ClipView, value="pending", status="pending", attempts=3, next_check_at=NOW, progress=10
    )
    settled = _hostile(
        ClipView,
        value=HOSTILE,
        attempts=None,
        next_check_at=None,
        last_error=None,
        progress=None,
    )
    return ProjectView(project_id=uuid4(), clips=[pending, settled])


def _check_response() -> dict[str, Any]:
    return {
        "success": True,
        "project_id": HOSTILE,
        "total_clips": 2,
        "completed": 1,
        "pending": 0,
        "failed": 1,
        "clips": {},
        "details": [
            {
                "jobId": "\x1b[2J",
                "status": HOSTILE,
                "videoUrl": HOSTILE,
                "alreadyProcessed": False,
            },
            {
                "jobId": "[/oops]",
                "status": "failed",
                "error": HOSTILE,
                "alreadyProcessed": True,
            },
        ],
    }


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda console: render_overview(_overview(), console), id="status"),
        pytest.param(
            lambda console: render_project(_project_view(), NOW, console), id="status --project"
        ),
        pytest.param(lambda console: render_check(_check_response(), console), id="check"),
    ],
)
def test_every_table_prints_app_text_escaped(render: Callable[[Console], None]) -> None:
    printed = plain_output(render)

    assert not RAW_CONTROLS.search(printed), sorted(set(RAW_CONTROLS.findall(printed)))
    assert printed.count("[/oops]") >= 1


def test_status_tables_show_each_text_field_escaped_in_full() -> None:
    overview = plain_output(lambda console: render_overview(_overview(), console))
    project = plain_output(lambda console: render_project(_project_view(), NOW, console))

    # Replica name, feed state and version; bucket label; stuck job id and last error;
    # failed job id and reason; the reason's count row.
    assert overview.count(HOSTILE_SHOWN) == 9
    # Both clips' keys, the pending clip's last error, the settled one's status and value.
    assert project.count(HOSTILE_SHOWN) == 5


def test_the_check_table_shows_keys_and_reasons_escaped() -> None:
    printed = plain_output(lambda console: render_check(_check_response(), console))

    assert "\\x1b[2J" in printed
    assert "[/oops]" in printed
    assert printed.count(HOSTILE_SHOWN) == 4  # project id, a status, a URL, a reason
