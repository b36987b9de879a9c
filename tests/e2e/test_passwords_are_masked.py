"""A database password is never printed: not by the CLI when DATABASE_URL is malformed in a way
only the driver notices, or names an unreachable server, and not in any URL a log line or an
error message carries."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.local.localpg import free_port
from reconciler.redaction import Redactor, mask_url_password
from tests.cli import run_reconciler

PASSWORD = "cli-db-password-0123"
PROJECT = "00000000-0000-0000-0000-000000000001"


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("command", [("check", PROJECT), ("migrate",)])
async def test_a_url_only_the_driver_rejects_gives_one_line_without_the_password(
    service_env: dict[str, str], command: tuple[str, ...]
) -> None:
    # The settings check accepts it (a port in the query string); asyncpg's parser does not.
    url = f"postgresql://postgres:{PASSWORD}@/db?host=127.0.0.1&port=not-a-port"
    code, out, err = await _run(service_env | {"DATABASE_URL": url}, *command)

    assert code == 1
    assert err.startswith("error: ")
    assert len(err.splitlines()) == 1, err
    assert PASSWORD not in out + err


async def test_an_unreachable_database_gives_one_line_without_the_password(
    service_env: dict[str, str],
) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/db"
    code, out, err = await _run(service_env | {"DATABASE_URL": url}, "check", PROJECT)

    assert code == 1
    assert err.startswith("error: database unavailable")
    assert len(err.splitlines()) == 1, err
    assert PASSWORD not in out + err


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("dsn=postgres://u:p@ss@h/db failed", "dsn=postgres://u:***@h/db failed"),
        ("Connect to POSTGRESQL://u:p%40ss@h/db", "Connect to POSTGRESQL://u:***@h/db"),
        ("https://h/path?q=1 has no password", "https://h/path?q=1 has no password"),
        ("postgresql://u@h/db neither", "postgresql://u@h/db neither"),
    ],
)
def test_url_passwords_are_masked(text: str, shown: str) -> None:
    assert mask_url_password(text) == shown
    assert Redactor()(text) == shown


def test_a_configured_password_is_masked_even_without_its_url() -> None:
    redact = Redactor(["p%40ss-word"])  # as urlsplit reads it from DATABASE_URL
    assert redact("auth failed for p%40ss-word, that is p@ss-word") == (
        "auth failed for ***, that is ***"
    )
