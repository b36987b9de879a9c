"""A missing or malformed setting stops start-up with one line that names it."""

from __future__ import annotations

import pytest

from reconciler.config import ConfigError, load_settings
from tests.cli import run_reconciler

OLD_SECRET = "old-secret-0123456789abcdef0123456789"
NEW_SECRET = "new-secret-0123456789abcdef0123456789"
BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "an-admin-token-of-32-characters-at-least",
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456",
}


def test_minimal_postgres_settings() -> None:
    settings = load_settings(BASE)
    assert settings.transport == "postgres"
    assert settings.runware_api_url == "https://api.runware.ai/v1"
    assert settings.port == 8000
    assert settings.caller_tokens == ("an-admin-token-of-32-characters-at-least",)


def test_supabase_settings() -> None:
    settings = load_settings(
        {
            "SUPABASE_URL": "https://x.supabase.co",
            "SUPABASE_SERVICE_ROLE_KEY": "a-service-role-key-of-32-characters-at-least",
            "RUNWARE_API_KEY": "k",
            "RECONCILER_INSECURE_WEBHOOKS": "1",
        }
    )
    assert settings.transport == "supabase"
    assert settings.caller_tokens == ("a-service-role-key-of-32-characters-at-least",)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "SUPABASE_URL"),
        (
            {"SUPABASE_URL": "https://x.supabase.co", "RUNWARE_API_KEY": "k"},
            "SUPABASE_SERVICE_ROLE_KEY",
        ),
        ({**BASE, "DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({**BASE, "SUPABASE_URL": "x.supabase.co"}, "SUPABASE_URL"),
        ({k: v for k, v in BASE.items() if k != "RUNWARE_API_KEY"}, "RUNWARE_API_KEY"),
        (
            {k: v for k, v in BASE.items() if k != "RECONCILER_ADMIN_TOKEN"},
            "RECONCILER_ADMIN_TOKEN",
        ),
        ({**BASE, "RUNWARE_API_URL": "ftp://x"}, "RUNWARE_API_URL"),
        ({**BASE, "PORT": "eighty"}, "PORT"),
        ({**BASE, "RECONCILER_BATCH_SIZE": "0"}, "RECONCILER_BATCH_SIZE"),
        ({**BASE, "RECONCILER_BATCH_SIZE": "1.5"}, "RECONCILER_BATCH_SIZE"),
        (
            {**BASE, "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "-1"},
            "RECONCILER_FIRST_CHECK_DELAY_SECONDS",
        ),
        (
            {**BASE, "RECONCILER_RUNWARE_TIMEOUT_SECONDS": "soon"},
            "RECONCILER_RUNWARE_TIMEOUT_SECONDS",
        ),
        ({**BASE, "RECONCILER_ALLOWED_URL_HOSTS": " , "}, "RECONCILER_ALLOWED_URL_HOSTS"),
        ({**BASE, "RECONCILER_TRANSPORT": "carrier-pigeon"}, "RECONCILER_TRANSPORT"),
        ({**BASE, "RECONCILER_LOG_LEVEL": "loud"}, "RECONCILER_LOG_LEVEL"),
        ({"RECONCILER_TRANSPORT": "postgres", "RUNWARE_API_KEY": "k"}, "DATABASE_URL"),
        (
            {k: v for k, v in BASE.items() if k != "RUNWARE_WEBHOOK_SECRET"},
            "RUNWARE_WEBHOOK_SECRET",
        ),
        ({**BASE, "RUNWARE_WEBHOOK_SECRET": "short"}, "RUNWARE_WEBHOOK_SECRET"),
        (
            {**BASE, "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456,tiny"},
            "RUNWARE_WEBHOOK_SECRET",
        ),
        ({**BASE, "RECONCILER_INSECURE_WEBHOOKS": "maybe"}, "RECONCILER_INSECURE_WEBHOOKS"),
        ({**BASE, "RECONCILER_WEBHOOK_VERIFY": "always"}, "RECONCILER_WEBHOOK_VERIFY"),
        ({**BASE, "RECONCILER_WEBHOOK_MAX_BYTES": "0"}, "RECONCILER_WEBHOOK_MAX_BYTES"),
        ({**BASE, "RECONCILER_WEBHOOK_MAX_TASKS": "0"}, "RECONCILER_WEBHOOK_MAX_TASKS"),
        (
            {**BASE, "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE": "-1"},
            "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE",
        ),
        (
            {**BASE, "RECONCILER_SERVICE_CHECK_RATE_BURST": "0"},
            "RECONCILER_SERVICE_CHECK_RATE_BURST",
        ),
        (
            {**BASE, "RECONCILER_JWKS_MIN_REFETCH_SECONDS": "often"},
            "RECONCILER_JWKS_MIN_REFETCH_SECONDS",
        ),
        ({**BASE, "RECONCILER_JWT_LEEWAY_SECONDS": "-5"}, "RECONCILER_JWT_LEEWAY_SECONDS"),
        (
            {**BASE, "RECONCILER_ALLOWED_URL_HOSTS": "user@vm.runware.ai"},
            "RECONCILER_ALLOWED_URL_HOSTS",
        ),
        (
            {**BASE, "RECONCILER_ALLOWED_URL_HOSTS": "vm.runware.ai/videos"},
            "RECONCILER_ALLOWED_URL_HOSTS",
        ),
    ],
)
def test_bad_setting_is_named(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    assert raised.value.name == name
    assert str(raised.value).startswith(f"{name}: ")


def test_cli_prints_one_line_and_exits_2() -> None:
    done = run_reconciler({**BASE, "RECONCILER_BATCH_SIZE": "lots"}, "serve")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: RECONCILER_BATCH_SIZE: expected a whole number ≥ 1, got 'lots'"
    ]


@pytest.mark.parametrize(
    "secret",
    [
        # `openssl rand -base64 32`: `+` arrives as a space in the query string, `/` and `=`
        # are mangled by some senders, so every webhook would get 401.
        "q1XbUw+Zr3ZkXK2pS/9lYtZs0Hc3b8y4H1rQm7e2vJk=",
        "0123456789abcdef0123456789abcde",  # 31 characters
        "0123456789abcdef 0123456789abcdef",
        "0123456789abcdef%200123456789abcdef",
    ],
    ids=["base64", "too-short", "space", "percent"],
)
def test_webhook_secrets_that_do_not_survive_a_url_are_refused_in_one_line(secret: str) -> None:
    done = run_reconciler({**BASE, "RUNWARE_WEBHOOK_SECRET": secret}, "serve")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: RUNWARE_WEBHOOK_SECRET: ")
    assert "A-Z a-z 0-9 . _ ~ -" in lines[0]
    assert secret.split()[0] not in done.stderr  # a refused secret is still a secret


def test_url_safe_secrets_of_32_characters_are_accepted() -> None:
    secret = "Az09._~-" * 4
    assert load_settings({**BASE, "RUNWARE_WEBHOOK_SECRET": secret}).webhook_secrets == (secret,)


def test_cli_check_rejects_a_bad_project_id() -> None:
    done = run_reconciler(BASE, "check", "nope")
    assert done.returncode == 2
    assert "PROJECT_ID must be a UUID" in done.stderr


def test_webhook_secret_rotation_list_and_insecure_flag() -> None:
    rotated = load_settings({**BASE, "RUNWARE_WEBHOOK_SECRET": f"{OLD_SECRET}, {NEW_SECRET}"})
    assert rotated.webhook_secrets == (OLD_SECRET, NEW_SECRET)
    without = {k: v for k, v in BASE.items() if k != "RUNWARE_WEBHOOK_SECRET"}
    insecure = load_settings({**without, "RECONCILER_INSECURE_WEBHOOKS": "1"})
    assert insecure.webhook_secrets == ()
    assert insecure.insecure_webhooks
    # The check command receives no webhooks, so it needs no secret.
    assert load_settings(without, serving=False).webhook_secrets == ()
