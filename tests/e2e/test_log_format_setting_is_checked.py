"""RECONCILER_LOG_FORMAT: `console` (default) or `json`; anything else stops start-up with one
line naming the setting."""

from __future__ import annotations

import pytest

from reconciler.config import ConfigError, load_settings
from tests.cli import run_reconciler

BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "an-admin-token-of-32-characters-at-least",
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456",
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
    done = run_reconciler({**BASE, "RECONCILER_LOG_FORMAT": "xml"}, "serve")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: RECONCILER_LOG_FORMAT: expected console or json, got 'xml'"
    ]
