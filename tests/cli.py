"""Running `python -m reconciler …` as users do, with only the settings a test gives it."""

from __future__ import annotations

import os
import subprocess
import sys

_SETTING_PREFIXES = ("SUPABASE", "DATABASE", "RUNWARE", "RECONCILER")


def clean_environment(settings: dict[str, str]) -> dict[str, str]:
    """This process's environment without any reconciler setting, plus `settings`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_SETTING_PREFIXES)}
    return base | settings


def run_reconciler(
    settings: dict[str, str], *args: str, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        env=clean_environment(settings | {"COLUMNS": str(columns)}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
