"""Each setting's default and bounds come from its one declaration: an unset (or empty)
variable gives the declared default, the bound itself is accepted and a value past it is not,
and the policies the engine and the check use start from the same defaults."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from pydantic.fields import FieldInfo

from reconciler.auth import CallerVerifier, JwksCache
from reconciler.checker import CheckPolicy
from reconciler.clips import parse_allowed_origin
from reconciler.config import DEFAULTS, ENV, ConfigError, Settings, load_settings
from reconciler.engine import EnginePolicy
from reconciler.runware.client import RunwareClient
from reconciler.store.postgres import connect_postgres_store

BASE = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
    "RECONCILER_ADMIN_TOKEN": "an-admin-token-of-32-characters-at-least",
    "RUNWARE_API_KEY": "k",
    "RUNWARE_WEBHOOK_SECRET": "a-long-enough-webhook-secret-0123456",
}
_GIVEN_BY_BASE = {name for name, env in ENV.items() if env in BASE}


def _bounded() -> list[tuple[str, FieldInfo, str]]:
    found = []
    for name, field in Settings.model_fields.items():
        extra = field.json_schema_extra
        assert isinstance(extra, dict)
        for side in ("minimum", "maximum"):
            if extra[side] is not None:
                found.append((name, field, side))
    return found


def test_unset_and_empty_variables_give_the_declared_defaults() -> None:
    blanks = {env: "  " for name, env in ENV.items() if name not in _GIVEN_BY_BASE}
    for env in (BASE, {**BASE, **blanks}):
        settings = load_settings(env)
        for name, field in Settings.model_fields.items():
            if name not in _GIVEN_BY_BASE:
                assert getattr(settings, name) == getattr(DEFAULTS, name), name
                value = getattr(DEFAULTS, name)
                if not isinstance(value, tuple | frozenset):  # lists: declared as their text
                    assert value == field.default, name


def test_some_defaults_as_documented() -> None:
    settings = load_settings(BASE)
    assert settings.port == 8000
    assert settings.batch_size == 50
    assert settings.runware_api_url == "https://api.runware.ai/v1"
    assert settings.allowed_url_hosts == {
        parse_allowed_origin("vm.runware.ai"),
        parse_allowed_origin("im.runware.ai"),
    }
    assert settings.log_format == "console"
    assert settings.service_check_rate_per_minute == 0  # full-access callers: not limited
    assert settings.transport == "postgres"
    assert settings.feed == "off"


@pytest.mark.parametrize(
    ("name", "field", "side"), _bounded(), ids=[f"{n}-{s}" for n, _, s in _bounded()]
)
def test_each_bound_is_inclusive_and_enforced(name: str, field: FieldInfo, side: str) -> None:
    extra = field.json_schema_extra
    assert isinstance(extra, dict)
    bound = extra[side]
    assert isinstance(bound, int | float)
    env = ENV[name]
    at = str(int(bound)) if field.annotation is int else repr(float(bound))
    assert getattr(load_settings({**BASE, env: at}), name) == bound
    step = 1 if field.annotation is int else max(abs(bound) * 0.5, 0.001)
    past = bound - step if side == "minimum" else bound + step
    with pytest.raises(ConfigError) as raised:
        load_settings({**BASE, env: str(int(past)) if field.annotation is int else repr(past)})
    assert raised.value.name == env


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("0", False), ("no", False), ("FALSE", False)],
)
def test_flags_read_the_usual_spellings(raw: str, expected: bool) -> None:
    assert load_settings({**BASE, "RECONCILER_ENGINE": raw}).engine is expected


def test_choices_ignore_case_and_v01_notify_means_off() -> None:
    assert load_settings({**BASE, "RECONCILER_LOG_LEVEL": "DEBUG"}).log_level == "debug"
    assert load_settings({**BASE, "RECONCILER_FEED": "notify"}).feed == "off"
    supabase = {
        "SUPABASE_URL": "https://x.supabase.co",
        "SUPABASE_SERVICE_ROLE_KEY": "a-service-role-key-of-32-characters-at-least",
        "RUNWARE_API_KEY": "k",
        "RECONCILER_INSECURE_WEBHOOKS": "1",
    }
    assert load_settings(supabase).feed == "realtime"
    assert load_settings({**supabase, "RECONCILER_FEED": "off"}).feed == "off"


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_BATCH_SIZE", "7")
    monkeypatch.setenv("RECONCILER_WORKERS", "not a number")
    assert load_settings(BASE).batch_size == DEFAULTS.batch_size


def test_policies_start_from_the_declared_defaults() -> None:
    check = CheckPolicy()
    assert check.first_check_delay_seconds == DEFAULTS.first_check_delay_seconds
    assert check.unknown_task_grace_seconds == DEFAULTS.unknown_task_grace_seconds
    assert check.url_policy.allowed == DEFAULTS.allowed_url_hosts
    engine = EnginePolicy()
    expected: dict[str, Any] = {
        "workers": DEFAULTS.workers,
        "poll_interval_seconds": DEFAULTS.poll_interval_seconds,
        "claim_batch": DEFAULTS.claim_batch,
        "lease_seconds": DEFAULTS.lease_seconds,
        "sweep_on_start": DEFAULTS.sweep_on_start,
        "sweep_interval_seconds": DEFAULTS.sweep_interval_seconds,
        "sweep_spread_seconds": DEFAULTS.sweep_spread_seconds,
        "retention_seconds": DEFAULTS.retention_days * 86400,
        "resync_interval_seconds": DEFAULTS.resync_interval_seconds,
    }
    assert {name: getattr(engine, name) for name in expected} == expected
    assert engine.poll.backoff_base_seconds == DEFAULTS.backoff_base_seconds
    assert engine.poll.backoff_cap_seconds == DEFAULTS.backoff_cap_seconds
    assert engine.poll.give_up_after_seconds == DEFAULTS.give_up_seconds


def test_adapters_default_to_the_declared_settings() -> None:
    def defaults(function: Any) -> dict[str, Any]:
        return {
            name: parameter.default
            for name, parameter in inspect.signature(function).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }

    runware = defaults(RunwareClient.__init__)
    assert runware["batch_size"] == DEFAULTS.batch_size
    assert runware["max_in_flight"] == DEFAULTS.runware_concurrency
    assert runware["max_retries"] == DEFAULTS.runware_max_retries
    assert runware["timeout_seconds"] == DEFAULTS.runware_timeout_seconds
    assert defaults(JwksCache.__init__)["min_refetch_seconds"] == DEFAULTS.jwks_min_refetch_seconds
    assert defaults(CallerVerifier.__init__)["leeway_seconds"] == DEFAULTS.jwt_leeway_seconds
    assert defaults(connect_postgres_store)["max_size"] == DEFAULTS.db_pool_size
