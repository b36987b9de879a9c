"""Every kind of malformed setting stops start-up with one line that names the setting and
says what it takes; a secret is never part of that line."""

from __future__ import annotations

import pytest

from reconciler.config import ConfigError, load_settings

BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "an-admin-token-of-32-characters-at-least",
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456",
}


def _refusal(env: dict[str, str], **options: bool) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        load_settings(env, **options)
    return raised.value


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("RECONCILER_BATCH_SIZE", "lots", "expected a whole number ≥ 1, got 'lots'"),
        ("RECONCILER_BATCH_SIZE", "1.5", "expected a whole number ≥ 1, got '1.5'"),
        ("RECONCILER_BATCH_SIZE", "0", "expected a whole number ≥ 1, got '0'"),
        ("RECONCILER_RUNWARE_MAX_RETRIES", "-1", "expected a whole number ≥ 0, got '-1'"),
        ("PORT", "eighty", "expected a whole number from 0 to 65535, got 'eighty'"),
        ("PORT", "65536", "expected a whole number from 0 to 65535, got '65536'"),
        ("RECONCILER_LEASE_SECONDS", "soon", "expected a number of seconds ≥ 1, got 'soon'"),
        ("RECONCILER_LEASE_SECONDS", "0.5", "expected a number of seconds ≥ 1, got '0.5'"),
        (
            "RECONCILER_SWEEP_INTERVAL_SECONDS",
            "nan",
            "expected a finite number of seconds ≥ 0, got 'nan'",
        ),
        (
            "RECONCILER_GIVE_UP_SECONDS",
            "inf",
            "expected a finite number of seconds ≥ 1, got 'inf'",
        ),
        (
            "RECONCILER_CHECK_RATE_PER_MINUTE",
            "fast",
            "expected a number of checks per minute ≥ 0.01, got 'fast'",
        ),
        (
            "RECONCILER_RUNWARE_REQUESTS_PER_SECOND",
            "0",
            "expected a number of requests per second ≥ 0.01, got '0'",
        ),
        (
            "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE",
            "-1",
            "expected a number of checks per minute ≥ 0, got '-1'",
        ),
        ("RECONCILER_RETENTION_DAYS", "week", "expected a number of days ≥ 0.0001, got 'week'"),
        ("RECONCILER_ENGINE", "maybe", "expected 1 or 0, got 'maybe'"),
        ("RECONCILER_INSECURE_WEBHOOKS", "2", "expected 1 or 0, got '2'"),
        ("RECONCILER_TRANSPORT", "Pigeon", "expected auto, postgres or supabase, got 'pigeon'"),
        ("RECONCILER_FEED", "kafka", "expected auto, realtime or off, got 'kafka'"),
        ("RECONCILER_WEBHOOK_VERIFY", "always", "expected off or api, got 'always'"),
        (
            "RECONCILER_LOG_LEVEL",
            "loud",
            "expected debug, info, warning or error, got 'loud'",
        ),
        ("RECONCILER_LOG_FORMAT", "xml", "expected console or json, got 'xml'"),
        ("RUNWARE_API_URL", "ftp://x", "expected a http/https URL, got 'ftp://x'"),
        ("SUPABASE_URL", "x.supabase.co", "expected a http/https URL, got 'x.supabase.co'"),
        ("DATABASE_URL", "mysql://x/y", "expected a postgres/postgresql URL, got 'mysql://x/y'"),
        (
            "RECONCILER_CORS_ORIGINS",
            "https://app.example.com, app.example.com",
            "expected a http/https URL, got 'app.example.com'",
        ),
        ("RECONCILER_ALLOWED_URL_HOSTS", " , ", "must name at least one host"),
    ],
)
def test_a_malformed_value_is_named_with_what_it_takes(name: str, raw: str, message: str) -> None:
    refusal = _refusal({**BASE, name: raw})
    assert refusal.name == name
    assert str(refusal) == f"{name}: {message}"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({}, "SUPABASE_URL"),
        (
            {"SUPABASE_URL": "https://x.supabase.co", "RUNWARE_API_KEY": "k"},
            "SUPABASE_SERVICE_ROLE_KEY",
        ),
        ({"RECONCILER_TRANSPORT": "postgres", "RUNWARE_API_KEY": "k"}, "DATABASE_URL"),
        (
            {k: v for k, v in BASE.items() if k != "RECONCILER_ADMIN_TOKEN"},
            "RECONCILER_ADMIN_TOKEN",
        ),
        ({k: v for k, v in BASE.items() if k != "RUNWARE_API_KEY"}, "RUNWARE_API_KEY"),
        ({**BASE, "RECONCILER_FEED": "realtime"}, "RECONCILER_FEED"),
        (
            {k: v for k, v in BASE.items() if k != "RUNWARE_WEBHOOK_SECRET"},
            "RUNWARE_WEBHOOK_SECRET",
        ),
    ],
)
def test_a_rule_across_settings_names_the_setting_to_change(env: dict[str, str], name: str) -> None:
    refusal = _refusal(env)
    assert refusal.name == name
    assert str(refusal).startswith(f"{name}: ")
    assert "\n" not in str(refusal)


def test_the_first_bad_setting_is_named_when_several_are() -> None:
    refusal = _refusal({**BASE, "RECONCILER_BATCH_SIZE": "x", "RECONCILER_WORKERS": "y"})
    assert refusal.name == "RECONCILER_BATCH_SIZE"
    assert "\n" not in str(refusal)


@pytest.mark.parametrize(
    "secret",
    [
        "q1XbUw+Zr3ZkXK2pS/9lYtZs0Hc3b8y4H1rQm7e2vJk=",
        "0123456789abcdef0123456789abcde",  # 31 characters
        "a-long-enough-webhook-secret-0123456,tiny-but-secret",
    ],
)
def test_a_refused_webhook_secret_is_not_repeated(secret: str) -> None:
    refusal = _refusal({**BASE, "RUNWARE_WEBHOOK_SECRET": secret})
    assert refusal.name == "RUNWARE_WEBHOOK_SECRET"
    for part in secret.split(","):
        assert part not in str(refusal)


def test_a_refused_database_url_does_not_show_its_password() -> None:
    refusal = _refusal({**BASE, "DATABASE_URL": "mysql://u:hunter2-password@db/x"})
    assert refusal.name == "DATABASE_URL"
    assert "hunter2-password" not in str(refusal)


def test_a_malformed_database_port_does_not_show_the_password() -> None:
    refusal = _refusal({**BASE, "DATABASE_URL": "postgresql://u:hunter2-password@db:port/x"})
    assert refusal.name == "DATABASE_URL"
    assert "hunter2-password" not in str(refusal)
