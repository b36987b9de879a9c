"""What a workload hands back (table rows and JSON figures), and printing the table."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

TABLE_TITLE = "clip-reconciler bench"


@dataclass(frozen=True)
class Row:
    """One line of the table: a figure for this service beside its baseline."""

    metric: str
    service: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


@dataclass
class Outcome:
    """A workload's result: `figures` go to results.json as they are, `rows` to the table."""

    name: str
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "params": self.params,
            "figures": self.figures,
            "ratios": self.ratios,
            "targets": self.targets,
            "notes": self.notes,
        }


def fmt(value: float, unit: str = "", digits: int = 1) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def fmt_ratio(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.2f}x"


def render(outcomes: list[Outcome], console: Console) -> None:
    table = Table(title=TABLE_TITLE, show_lines=False)
    table.add_column("workload", style="bold")
    table.add_column("metric")
    table.add_column("this service", justify="right")
    table.add_column("baseline", justify="right")
    table.add_column("ratio", justify="right")
    table.add_column("target")
    table.add_column("met", justify="center")
    for outcome in outcomes:
        for index, row in enumerate(outcome.rows):
            met = "" if row.met is None else ("[green]yes[/]" if row.met else "[red]no[/]")
            table.add_row(
                f"{outcome.name} {outcome.title}" if index == 0 else "",
                row.metric,
                row.service,
                row.baseline,
                row.ratio,
                row.target,
                met,
                end_section=index == len(outcome.rows) - 1,
            )
    console.print(table)
    for outcome in outcomes:
        for note in outcome.notes:
            console.print(f"[dim]{outcome.name}: {note}[/]")
