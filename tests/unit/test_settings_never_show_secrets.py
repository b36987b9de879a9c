"""Settings printed (repr, str, a debugger, an error report) show whether a secret is set,
never its value, and a URL's password is masked."""

from __future__ import annotations

from reconciler.config import Settings, load_settings

SECRETS = {
    "SUPABASE_SERVICE_ROLE_KEY": "service-role-key-value-0001-0123456789",
    "RECONCILER_ADMIN_TOKEN": "admin-token-value-0002-0123456789abcdef",
    "RUNWARE_API_KEY": "runware-api-key-value-0003",
    "RUNWARE_WEBHOOK_SECRET": "webhook-secret-value-0004-0123456789abcdef",
    "RECONCILER_METRICS_TOKEN": "metrics-token-value-0005-0123456789abcdef",
    "SUPABASE_JWT_SECRET": "jwt-secret-value-0006-0123456789abcdefghij",
}
PASSWORD = "database-password-0007"


def _settings() -> Settings:
    return load_settings(
        {
            **SECRETS,
            "DATABASE_URL": f"postgresql://u:{PASSWORD}@127.0.0.1:5432/db",
            "SUPABASE_URL": "https://x.supabase.co",
        }
    )


def test_repr_and_str_show_no_secret() -> None:
    settings = _settings()
    for shown in (repr(settings), str(settings)):
        for secret in (*SECRETS.values(), PASSWORD):
            assert secret not in shown
        assert "runware_api_key='**********'" in shown  # set, and says so
        assert "postgresql://u:***@127.0.0.1:5432/db" in shown


def test_every_declared_secret_reaches_the_log_redactor() -> None:
    assert set(_settings().secrets) == {*SECRETS.values(), PASSWORD}


def test_secret_values_are_still_usable() -> None:
    settings = _settings()
    assert settings.runware_api_key == SECRETS["RUNWARE_API_KEY"]
    assert settings.caller_tokens == (
        SECRETS["SUPABASE_SERVICE_ROLE_KEY"],
        SECRETS["RECONCILER_ADMIN_TOKEN"],
    )
