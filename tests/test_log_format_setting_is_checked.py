"""RECONCILER_LOG_FORMAT: `console` (default) or `json`; anything else stops start-up with one
line naming the setting."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from reconciler.config import ConfigError, load_settings

BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "t",
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret",
}


def test_console_is_the_default() -> None:
    assert load_settings(BASE).log_format == "console"


@pytest.mark.parametrize(
    ("raw", "parsed"), [("json", "json"), (" JSON ", "json"), ("console", "console")]
)
def test_known_formats_are_accepted(raw: str, parsed: str) -> None:
    assert load_settings({**BASE, "RECONCILER_LOG_FORMAT": raw}).log_format == parsed


@pytest.mark.parametrize("raw", ["xml", "logfmt", "1"])
def test_an_unknown_format_is_named(raw: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, "RECONCILER_LOG_FORMAT": raw})
    assert raised.value.name == "RECONCILER_LOG_FORMAT"
    assert str(raised.value) == f"RECONCILER_LOG_FORMAT: expected console or json, got {raw!r}"


def test_serve_prints_one_line_and_exits_2() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SUPABASE", "DATABASE", "RUNWARE", "RECONCILER"))
    }
    env |= {**BASE, "RECONCILER_LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: RECONCILER_LOG_FORMAT: expected console or json, got 'xml'"
    ]
