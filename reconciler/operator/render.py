"""`reconciler status` in the terminal: the overview (or one project) as rich tables.

Times are shown relative to when the database answered (`generated_at`), so a clock that is
off on the operator's laptop does not change what "stuck for 2h" means. Every value read from
the database (or a service's JSON) is printed through `terminal_text`: keys, values, reasons,
replica names and feed states are app or provider data, never markup or terminal commands.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.clips import NO_REASON_RECORDED
from reconciler.operator.terminal import id_width, print_whole, terminal_text
from reconciler.operator.views import Overview, ProjectView

_FAILURES_SHOWN = 10


def duration(seconds: float) -> str:
    """Compact, largest units first: "45s", "3m 20s", "2h 5m", "3d 4h"."""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    return f"{duration((now - moment).total_seconds())} ago"


def _until(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = (moment - now).total_seconds()
    return "due now" if seconds <= 0 else f"in {duration(seconds)}"


def render_overview(overview: Overview, console: Console) -> None:
    now = overview.generated_at
    console.print(f"[bold]Clip reconciler[/bold] - status at {now.isoformat(timespec='seconds')}")

    replicas = Table(title="Replicas", title_justify="left")
    for column in ("replica", "alive", "feed", "leases", "last seen", "last sweep", "up since"):
        replicas.add_column(column)
    for replica in overview.replicas:
        replicas.add_row(
            terminal_text(replica.owner),
            "[green]yes[/green]" if replica.alive else "[red]NO[/red]",
            terminal_text(replica.feed_state),
            str(replica.leases_held),
            _ago(replica.last_seen_at, now),
            _ago(replica.last_sweep_at, now),
            Text.assemble(
                f"{_ago(replica.started_at, now)} (", terminal_text(replica.version), ")"
            ),
        )
    console.print(replicas)
    if not any(replica.alive for replica in overview.replicas):
        console.print("[red]No replica is alive: nothing is polling Runware.[/red]")

    buckets = Table(title=f"Unsettled jobs: {overview.unsettled}", title_justify="left")
    for bucket in overview.age_buckets:
        buckets.add_column(Text.assemble("waiting ", terminal_text(bucket.label)), justify="right")
    buckets.add_row(*(str(bucket.count) for bucket in overview.age_buckets))
    console.print(buckets)

    if overview.oldest:
        oldest = Table(title="Oldest unsettled jobs", title_justify="left")
        # Ids whole, however narrow the terminal: they are there to be copied (print_whole).
        oldest.add_column("project", no_wrap=True, min_width=id_width([]))
        oldest.add_column(
            "job", no_wrap=True, min_width=id_width(j.job_id for j in overview.oldest)
        )
        for column in ("waiting", "checks", "next check", "progress"):
            oldest.add_column(column)
        oldest.add_column("last error", overflow="fold")
        for job in overview.oldest:
            oldest.add_row(
                str(job.project_id),
                terminal_text(job.job_id),
                duration((now - job.first_seen_at).total_seconds()),
                str(job.attempts),
                _until(job.next_check_at, now),
                "-" if job.progress is None else f"{job.progress}%",
                terminal_text(job.last_error or "-"),
            )
        print_whole(console, oldest)

    failed = len(overview.failures_24h)
    if overview.failure_reasons_24h:
        reasons = Table(title="Failures in the last 24 h, by reason", title_justify="left")
        reasons.add_column("count", justify="right")
        reasons.add_column("reason", overflow="fold")
        for reason, count in overview.failure_reasons_24h:
            reasons.add_row(str(count), terminal_text(reason))
        console.print(reasons)
        recent = Table(title="Most recent failures", title_justify="left")
        shown = overview.failures_24h[:_FAILURES_SHOWN]
        recent.add_column("project", no_wrap=True, min_width=id_width([]))
        recent.add_column("job", no_wrap=True, min_width=id_width(f.job_id for f in shown))
        recent.add_column("failed")
        recent.add_column("reason", overflow="fold")
        for failure in shown:
            recent.add_row(
                str(failure.project_id),
                terminal_text(failure.job_id),
                _ago(failure.settled_at, now),
                terminal_text(failure.reason),
            )
        print_whole(console, recent)
    elif failed == 0:
        console.print("No failures in the last 24 h.")

    console.print(f"Parked webhook results (job in no project yet): {overview.parked_results}")
    backlog = overview.archive_backlog
    console.print(f"Archive backlog: {'archiving is off' if backlog is None else backlog}")


def render_project(view: ProjectView, now: datetime, console: Console) -> None:
    table = Table(title=f"Project {view.project_id}", title_justify="left")
    table.add_column("job", no_wrap=True, min_width=id_width(c.job_id for c in view.clips))
    for column in ("status", "checks", "next check", "progress"):
        table.add_column(column)
    table.add_column("value / last error", overflow="fold")
    for clip in view.clips:
        detail = clip.value
        if clip.status == "failed":  # why it failed, as the check and /admin say
            detail = clip.last_error or NO_REASON_RECORDED
        elif clip.status == "pending" and clip.last_error:
            detail = clip.last_error
        table.add_row(
            terminal_text(clip.job_id),
            terminal_text(clip.status),
            "-" if clip.attempts is None else str(clip.attempts),
            _until(clip.next_check_at, now),
            "-" if clip.progress is None else f"{clip.progress}%",
            terminal_text(detail),
        )
    print_whole(console, table)
    if not view.clips:
        console.print("This project has no clips.")
