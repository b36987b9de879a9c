"""Running `python -m reconciler …` as users do, with only the settings a test gives it."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

# Everything the reconciler reads from its environment (reconciler/config.py): a setting of
# the machine running the tests must not leak into a process a test starts.
_SETTING_PREFIXES = ("SUPABASE", "DATABASE", "RUNWARE", "RECONCILER")
_SETTING_NAMES = ("PORT",)
# After the kill, how long to read what is left of the output: the whole group is dead then,
# so only a process that left it (setsid) could still hold the pipes open.
_DRAIN_SECONDS = 10.0


# Where the processes tests start run: an empty directory, because the CLI reads `./.env`
# (config.environment) and an adopter's `.env` in the checkout must not leak into the suite.
# Test modules (`python -m tests.standins…`) are found through PYTHONPATH instead.
CHILD_DIRECTORY = tempfile.mkdtemp(prefix="reconciler-test-cwd-")
atexit.register(shutil.rmtree, CHILD_DIRECTORY, True)
REPO_ROOT = Path(__file__).resolve().parent.parent


def clean_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any reconciler setting, plus `settings`."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_SETTING_PREFIXES) and k not in _SETTING_NAMES
    }
    python_path = os.pathsep.join(p for p in (str(REPO_ROOT), base.get("PYTHONPATH")) if p)
    return base | {"PYTHONPATH": python_path} | settings


def run_reconciler(
    settings: dict[str, str],
    *args: str,
    columns: int = 200,
    timeout: float = 60.0,
    cwd: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command to its end (in `cwd`, else this directory); past `timeout` seconds it
    is killed with everything it started, and `subprocess.TimeoutExpired` is raised."""
    process = start_command(
        [sys.executable, "-m", "reconciler", *args],
        clean_environment(settings | {"COLUMNS": str(columns)}),
        cwd=cwd,
    )
    return finish_command(process, timeout)


def start_command(
    argv: list[str], env: dict[str, str], *, cwd: str | None = None
) -> subprocess.Popen[str]:
    """Start `argv` in a session (and process group) of its own, for `finish_command`."""
    return subprocess.Popen(
        argv,
        env=env,
        cwd=cwd if cwd is not None else CHILD_DIRECTORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish_command(
    process: subprocess.Popen[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Wait for a `start_command` process and collect its output. On timeout (or any other
    interruption) its whole process group is killed, not only the process itself: what it
    started (a PostgreSQL, a server) dies with it instead of outliving the test, and no
    grandchild holds the output pipes open so that reading them would never end."""
    with process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException as error:
            _kill_group(process)
            if isinstance(error, subprocess.TimeoutExpired):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    # str in text mode, as subprocess.run sets them (typeshed says bytes).
                    output = process.communicate(timeout=_DRAIN_SECONDS)
                    error.stdout, error.stderr = output  # type: ignore[assignment]
            raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _kill_group(process: subprocess.Popen[str]) -> None:
    # The group id is the process's pid (start_new_session); a pid is not reused while a
    # group of that id still has a member.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
