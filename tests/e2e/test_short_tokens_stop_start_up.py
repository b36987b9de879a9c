"""A token that opens something (the admin page and check endpoint, the metrics scrape, full
access as the service role, user JWT signatures) shorter than 32 characters stops `serve` with
one line naming the setting, and never echoes the value."""

from __future__ import annotations

import pytest

from reconciler.config import MIN_TOKEN_LENGTH, load_settings
from tests.cli import run_reconciler

LONG = "a-token-of-at-least-32-characters-0123456789"
BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": LONG,
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456",
}
TOKEN_SETTINGS = [
    "RECONCILER_ADMIN_TOKEN",
    "RECONCILER_METRICS_TOKEN",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_JWT_SECRET",
]


@pytest.mark.parametrize("name", TOKEN_SETTINGS)
@pytest.mark.parametrize("short", ["a", "short-secret-0123456789abcdefgh"], ids=["1", "31"])
def test_a_short_token_stops_serve_in_one_line_naming_it(name: str, short: str) -> None:
    done = run_reconciler({**BASE, name: short}, "serve", "--port", "0")

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {name}: must be at least {MIN_TOKEN_LENGTH} characters")
    if len(short) > 1:  # a single character is bound to appear somewhere in the line
        assert short not in done.stderr  # a refused secret is still a secret


@pytest.mark.parametrize("name", TOKEN_SETTINGS)
def test_tokens_of_32_characters_are_accepted(name: str) -> None:
    token = "x" * MIN_TOKEN_LENGTH
    settings = load_settings({**BASE, name: token})
    assert token in settings.secrets
