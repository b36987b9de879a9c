"""Runs the chosen workloads against one throw-away PostgreSQL, then prints and saves."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from bench import (
    w1_check,
    w2_ingest,
    w3_convergence,
    w4_memory,
    w5_webhook_parse,
    w6_host_tax,
    w7_sweep_cost,
    w8_archive,
    w9_status,
    w10_fair_polls,
    w11_user_check_bounds,
    w12_live_install,
    w13_dead_rows,
)
from bench.context import BenchContext
from bench.database import BenchDatabases
from bench.report import Outcome, render
from reconciler.local.localpg import LocalPostgres

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results.json"

Workload = Callable[[BenchContext], Awaitable[Outcome]]
WORKLOADS: dict[str, Workload] = {
    "W1": w1_check.run,
    "W2": w2_ingest.run,
    "W3": w3_convergence.run,
    "W4": w4_memory.run,
    "W5": w5_webhook_parse.run,
    "W6": w6_host_tax.run,
    "W7": w7_sweep_cost.run,
    "W8": w8_archive.run,
    "W9": w9_status.run,
    "W10": w10_fair_polls.run,
    "W11": w11_user_check_bounds.run,
    "W12": w12_live_install.run,
    "W13": w13_dead_rows.run,
}
T = TypeVar("T")


def _run_loop(main: Coroutine[Any, Any, T]) -> T:
    """uvloop, as `reconciler serve` gets through uvicorn, so in-process servers run alike."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.run(main)
    return uvloop.run(main)


def machine_facts(postgres_version: str) -> dict[str, Any]:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "python_version": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "postgres_version": postgres_version,
        "platform": platform.platform(),
    }


async def _run_all(names: list[str], ctx: BenchContext) -> tuple[list[Outcome], str]:
    await ctx.databases.prepare_template()
    version = await ctx.databases.version()
    outcomes = []
    for name in names:
        started = time.monotonic()
        ctx.say(f"[bold]{name}[/] starting")
        outcome = await WORKLOADS[name](ctx)
        outcome.figures["bench_seconds"] = round(time.monotonic() - started, 1)
        outcomes.append(outcome)
    return outcomes, version


def run_bench(names: list[str], *, quick: bool, output: str | None) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)  # a file or a pipe: keep the table on one line per row
    progress = Console(stderr=True)
    started = time.monotonic()
    log_dir = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    with LocalPostgres() as server:
        ctx = BenchContext(BenchDatabases(server), log_dir, progress, quick)
        outcomes, version = _run_loop(_run_all(names, ctx))
    render(outcomes, console)
    results = {
        "command": shlex.join(["python", "-m", "bench", *sys.argv[1:]]),
        "quick": quick,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_seconds": round(time.monotonic() - started, 1),
        "machine": machine_facts(version),
        "workloads": {outcome.name: outcome.as_json() for outcome in outcomes},
        "all_targets_met": all(bool(o.targets.get("met")) for o in outcomes),
        "server_logs": str(log_dir),
    }
    path = Path(output) if output else DEFAULT_OUTPUT
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    console.print(f"results written to {path} (server logs in {log_dir})")
    return 0
