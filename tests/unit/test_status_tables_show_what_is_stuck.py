"""`reconciler status` tables: ages relative to when the database answered, dead replicas and
the absence of any live one called out, and text from the database printed as text (a job id
or reason holding rich markup must not restyle or hide anything)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from rich.console import Console

from reconciler.operator.render import duration, render_overview, render_project
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


def printed(render: Callable[[Console], None]) -> str:
    console = Console(width=250, record=True, color_system=None)
    render(console)
    return console.export_text()


def overview(*, alive: bool) -> Overview:
    return Overview(
        generated_at=NOW,
        replicas=[
            ReplicaView(
                owner="web-1:7:abc",
                version="0.1.0",
                started_at=NOW - timedelta(hours=3),
                last_seen_at=NOW - timedelta(seconds=40),
                feed_state="reconnecting",
                leases_held=4,
                last_sweep_at=None,
                alive=alive,
            )
        ],
        age_buckets=[AgeBucket("<1m", 2), AgeBucket("1-6h", 1)],
        oldest=[
            StuckJob(
                project_id=uuid4(),
                job_id="[red]job-x[/red]",
                first_seen_at=NOW - timedelta(hours=1, minutes=5),
                attempts=12,
                next_check_at=NOW + timedelta(seconds=90),
                last_error="Runware: [bold]queued[/bold]",
                progress=60,
            )
        ],
        failures_24h=[
            RecentFailure(uuid4(), "job-f", NOW - timedelta(minutes=3), "content moderation")
        ],
        failure_reasons_24h=[("content moderation", 1)],
        parked_results=5,
        archive_backlog=None,
    )


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45, "45s"), (200, "3m 20s"), (7500, "2h 5m"), (273600, "3d 4h")],
)
def test_durations_are_compact(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_the_overview_shows_stuck_jobs_and_failures_as_text() -> None:
    text = printed(lambda console: render_overview(overview(alive=True), console))

    assert "[red]job-x[/red]" in text
    assert "Runware: [bold]queued[/bold]" in text
    assert "1h 5m" in text  # waiting
    assert "in 1m 30s" in text  # next check
    assert "60%" in text
    assert "content moderation" in text
    assert "Unsettled jobs: 3" in text
    assert "Parked webhook results (job in no project yet): 5" in text
    assert "Archive backlog: archiving is off" in text
    assert "No replica is alive" not in text


def test_a_dead_replica_and_no_live_one_are_called_out() -> None:
    text = printed(lambda console: render_overview(overview(alive=False), console))

    assert "NO" in text
    assert "40s ago" in text
    assert "No replica is alive" in text


def test_a_project_shows_each_clip_with_its_last_error() -> None:
    view = ProjectView(
        project_id=uuid4(),
        clips=[
            ClipView("waiting", "pending", "pending", 3, NOW, "Runware: queued", 10, None),
            ClipView(
                "done", "https://vm.runware.ai/v.mp4", "completed", None, None, None, None, None
            ),
        ],
    )
    text = printed(lambda console: render_project(view, NOW, console))

    assert "Runware: queued" in text
    assert "due now" in text
    assert "https://vm.runware.ai/v.mp4" in text


def test_the_archive_backlog_is_shown_when_archiving_is_on() -> None:
    on = dataclasses.replace(overview(alive=True), archive_backlog=17)

    text = printed(lambda console: render_overview(on, console))

    assert "Archive backlog: 17" in text
