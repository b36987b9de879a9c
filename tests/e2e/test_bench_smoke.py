"""`python -m bench --quick` runs every workload, prints the table and writes results.json.

Figures are machine-dependent, so nothing here checks a timing: only that every workload ran,
reported what it promises, and that both sides of each comparison ended with correct clips.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(240)
def test_quick_bench_prints_the_table_and_writes_results(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    for heading in ("clip-reconciler bench", "W1 check", "W2 webhook ingest", "W3 convergence"):
        assert heading in done.stdout
    assert "W4 memory" in done.stdout
    assert "W5 webhook parse" in done.stdout
    assert "W6 host tax" in done.stdout
    assert "W7 sweep cost" in done.stdout
    assert "W9 status cost" in done.stdout
    assert "W8 archive" in done.stdout
    assert "W10 fair polls" in done.stdout
    assert "W11 user check bounds" in done.stdout
    assert "W12 live install" in done.stdout
    assert "W13 dead rows" in done.stdout
    results = json.loads(output.read_text())
    assert results["quick"] is True
    assert {"cpu_count", "python_version", "postgres_version", "platform"} <= set(
        results["machine"]
    )
    workloads = results["workloads"]
    assert set(workloads) == {
        *("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11", "W12", "W13")
    }
    for workload in workloads.values():
        assert {"params", "figures", "ratios", "targets"} <= set(workload)
        assert "met" in workload["targets"]

    w1 = workloads["W1"]
    assert {"service", "seed"} <= set(w1["figures"])
    assert w1["figures"]["service"]["clips_correct"] is True
    assert w1["figures"]["seed"]["clips_correct"] is True
    assert w1["figures"]["service"]["runware_requests_per_check"] == [1]
    assert w1["ratios"]["speedup_wall_median"] is not None

    w2 = workloads["W2"]
    for contender in ("service", "bare_endpoint", "driver"):
        figures = w2["figures"][contender]
        assert figures["all_answered_200_and_stored"] is True
        assert {"throughput_per_second_median", "latency_p50_ms", "latency_p99_ms"} <= set(figures)
    assert {"service_over_bare_throughput", "service_over_driver_throughput"} <= set(w2["ratios"])

    w3 = workloads["W3"]
    for side in ("service", "seed_cron"):
        figures = w3["figures"][side]
        assert figures["clips_correct"] is True
        assert figures["clips_changed_more_than_once"] == 0
        assert {
            "runware_requests_per_clip",
            "projects_row_writes_per_clip",
            "completion_to_write_p50_seconds",
            "completion_to_write_p99_seconds",
        } <= set(figures)

    w4 = workloads["W4"]
    assert {"small", "large", "rss_growth_mb"} <= set(w4["figures"])
    assert w4["figures"]["large"]["rss_mb"] > 0

    w6 = workloads["W6"]
    for kind in ("add", "edit"):
        for variant in ("baseline", "before", "after"):
            assert w6["figures"]["tps_median_of_rounds"][kind][variant] > 0
    assert {"add_after_over_baseline", "edit_after_over_baseline"} <= set(w6["ratios"])
    # One outbox row per pending clip the "after" database was given (8 pgbench clients, two
    # measurements a round), none drained.
    params = w6["params"]
    adds = 8 * 2 * params["rounds"]["add"] * params["transactions_per_client"]["add"]
    assert w6["figures"]["after_outbox_rows_at_end"] == adds

    w7 = workloads["W7"]
    assert w7["figures"]["sweep_median_ms"]["large"] > 0
    assert w7["ratios"]["large_over_small"] is not None
    assert w7["ratios"]["large_over_small_0_1"] is not None

    w9 = workloads["W9"]
    assert w9["figures"]["overview_median_ms"]["large"] > 0
    assert w9["ratios"]["large_over_small"] is not None

    w12 = workloads["W12"]
    for phase in ("fresh_install", "upgrade_from_v0_1"):
        figures = w12["figures"][phase]
        assert figures["files_applied"] > 0
        assert figures["writes_before"] > 0
        assert figures["write_failures"] == 0
        assert figures["longest_write_during_seconds"] is not None

    w13 = workloads["W13"]
    assert w13["figures"]["open_transactions_holding_vacuum"] == 1
    assert len(set(w13["figures"]["jobs_claimed_per_round"])) == 1
    for key in ("poll_round_buffers", "drain_buffers", "poll_round_ms", "drain_ms"):
        assert w13["ratios"][key] is not None


def test_only_runs_the_chosen_workloads(tmp_path: Path) -> None:
    output = tmp_path / "results.json"

    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "w1", "--output", str(output)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-4000:]
    assert set(json.loads(output.read_text())["workloads"]) == {"W1"}
    assert "W2 webhook ingest" not in done.stdout


def test_an_unknown_workload_is_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "W1,W99"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "W99" in done.stderr
