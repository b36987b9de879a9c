"""`python -m reconciler.local.simulator` runs on its own and serves the API."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
from uuid import uuid4

import httpx

from reconciler.local.simulator.__main__ import build_parser, config_from_args


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.local.simulator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_lists_the_fault_options() -> None:
    result = run("--help")
    assert result.returncode == 0
    for option in ("--drop-webhooks", "--early-webhooks", "--error-rate", "--latency-ms"):
        assert option in result.stdout


def test_a_probability_out_of_range_is_refused() -> None:
    result = run("--fail-rate", "1.5")
    assert result.returncode == 2
    assert "not a probability" in result.stderr


def test_options_map_to_the_config() -> None:
    # The example invocation from the simulator's documentation, as a user would type it.
    args = build_parser().parse_args(
        shlex.split(
            "--port 8100 --api-key KEY --job-seconds 5 --fail-rate 0.1 --drop-webhooks 0.3 "
            "--duplicate-webhooks 0.2 --early-webhooks 0.1 --latency-ms 50 --error-rate 0.1"
        )
    )
    config = config_from_args(args)
    assert config.api_key == "KEY"
    assert (config.jobs.seconds, config.jobs.fail_rate) == (5.0, 0.1)
    assert (config.webhooks.drop, config.webhooks.duplicate) == (0.3, 0.2)
    assert config.webhooks.early == 0.1
    assert (config.api.latency_seconds, config.api.error_rate) == (0.05, 0.1)


def test_it_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "reconciler.local.simulator", "--port", "0", "--api-key", "K"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line.startswith("Runware simulator listening on http://127.0.0.1:")
            url = line.split()[-1]
            task_uuid = str(uuid4())
            body = [{"taskType": "getResponse", "taskUUID": task_uuid}]
            answer = httpx.post(url, json=body, headers={"Authorization": "Bearer K"})
            assert answer.json()["errors"][0]["code"] == "taskNotFound"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
