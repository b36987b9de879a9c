"""The session guard (tests/plugin.py): a process a test leaves running, as its direct child
or orphaned by a parent that exited, fails the run with its command line, and is killed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from tests import process_guard

REPO_ROOT = Path(__file__).resolve().parents[2]

LEAKY_TESTS = """
import subprocess
import sys

SLEEPER = [sys.executable, "-c", "import signal; signal.pause()", "{marker}"]


def test_leaves_a_child_running() -> None:
    subprocess.Popen([*SLEEPER, "child"])


def test_leaves_an_orphan_running() -> None:
    # The shell starts the sleeper in the background and exits: the sleeper is orphaned.
    subprocess.run(["sh", "-c", 'exec "$@" orphan &', "sh", *SLEEPER], check=True)
"""


def _running_with(marker: str) -> list[int]:
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return [
        pid
        for pid in pids
        if process_guard.is_alive(pid) and marker in process_guard.command_line(pid)
    ]


def _run_pytest(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(tests)
    return subprocess.run(
        # The project's test harness as a plugin: the session guard, on tests outside tests/.
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.plugin", "-p", "no:cacheprovider"),
            *("-q", "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_a_process_left_running_fails_the_run_and_is_killed(tmp_path: Path) -> None:
    marker = f"guard-probe-{uuid.uuid4()}"

    done = _run_pytest(tmp_path, LEAKY_TESTS.replace("{marker}", marker))

    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 passed" in done.stdout
    assert "processes outlived the test session" in done.stdout
    leaked = [line for line in done.stdout.splitlines() if marker in line]
    assert len(leaked) == 2, done.stdout
    assert any(line.endswith(" child") for line in leaked)
    assert any(line.endswith(" orphan") for line in leaked)
    assert _running_with(marker) == []


TERMINATED_TESTS = """
import os
import signal
import subprocess
import sys

SLEEPER = [sys.executable, "-c", "import signal; signal.pause()", "{marker}"]


def test_is_terminated_while_its_child_runs() -> None:
    subprocess.Popen([*SLEEPER, "child"])
    os.kill(os.getpid(), signal.SIGTERM)  # as a CI timeout would


def test_never_runs() -> None:
    raise AssertionError("the run was terminated before this test")
"""


def test_a_terminated_run_still_kills_what_it_started(tmp_path: Path) -> None:
    marker = f"guard-probe-{uuid.uuid4()}"

    done = _run_pytest(tmp_path, TERMINATED_TESTS.replace("{marker}", marker))

    assert done.returncode != 0, done.stdout + done.stderr
    assert "processes outlived the test session" in done.stdout, done.stdout + done.stderr
    assert "test_never_runs" not in done.stdout
    assert _running_with(marker) == []


def test_a_run_that_leaves_nothing_passes(tmp_path: Path) -> None:
    tests = "import subprocess\n\ndef test_waits_for_its_child() -> None:\n"
    tests += "    subprocess.run(['true'], check=True)\n"

    done = _run_pytest(tmp_path, tests)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "outlived" not in done.stdout
