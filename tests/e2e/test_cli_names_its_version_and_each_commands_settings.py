"""`reconciler --version` prints the installed version; every command's --help says what it
does and which settings it reads."""

from __future__ import annotations

from importlib import metadata

import pytest

from tests.cli import run_reconciler

COMMANDS = ("serve", "check", "sweep", "resync", "migrate", "uninstall", "status", "archive")


def test_version_is_the_package_metadata() -> None:
    done = run_reconciler({}, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"reconciler {metadata.version('clip-reconciler')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_names_the_settings_it_reads(command: str) -> None:
    done = run_reconciler({}, command, "--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())  # argparse folds the description
    assert "Reads:" in text
    assert "DATABASE_URL" in text


def test_demo_says_it_reads_no_settings() -> None:
    done = run_reconciler({}, "demo", "--help")
    assert done.returncode == 0, done.stderr
    assert "Reads no settings" in " ".join(done.stdout.split())
