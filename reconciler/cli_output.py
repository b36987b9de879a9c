"""Human-readable output for the command line and the demo."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table
from rich.text import Text

from reconciler.operator.terminal import id_width, print_whole, terminal_text


def progress_display(console: Console, *, bar: bool = True) -> Progress:
    """The commands' progress display (sweep, resync, archive back-fill): a spinner, what is
    being done and how many so far. The totals are rarely known in advance (counting would be
    a scan of its own), so a bar, when shown, pulses until a step sets its total."""
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if bar:
        columns.append(BarColumn())
    return Progress(*columns, MofNCompleteColumn(), console=console)


def render_check(response: dict[str, Any], console: Console) -> None:
    """The check endpoint's answer as a table. Keys, URLs and reasons are the app's and
    Runware's text: printed through `terminal_text`, never as markup or terminal commands."""
    table = Table(title=Text.assemble("Project ", terminal_text(response["project_id"])))
    # Ids are whole on one line, however narrow the terminal: they are there to be copied.
    table.add_column(
        "Job", no_wrap=True, min_width=id_width(d["jobId"] for d in response["details"])
    )
    table.add_column("Status", no_wrap=True)
    table.add_column("Video URL / reason", overflow="fold")
    table.add_column("Already processed", no_wrap=True)
    for detail in response["details"]:
        table.add_row(
            terminal_text(detail["jobId"]),
            terminal_text(detail["status"]),
            terminal_text(detail.get("videoUrl") or detail.get("error") or ""),
            "yes" if detail["alreadyProcessed"] else "no",
        )
    print_whole(console, table)
    console.print(
        terminal_text(
            f"{response['total_clips']} clips: {response['completed']} completed, "
            f"{response['pending']} pending, {response['failed']} failed"
        )
    )
