"""`.env.example` is generated from the settings' declarations: every setting the service reads
is in it with its default, and nothing else is (`python -m reconciler.config --env-example`
rewrites it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.config import Settings, env_example, env_names, main

ROOT = Path(__file__).resolve().parents[2]
_ASSIGNMENT = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)


def _in_env_example() -> dict[str, str]:
    return dict(_ASSIGNMENT.findall((ROOT / ".env.example").read_text()))


def test_env_example_is_generated_from_the_declarations() -> None:
    assert (ROOT / ".env.example").read_text() == env_example(), (
        "regenerate it: python -m reconciler.config --env-example > .env.example"
    )


def test_env_example_lists_every_setting_and_nothing_unknown() -> None:
    assert set(_in_env_example()) == set(env_names().values())


def test_env_example_shows_each_default() -> None:
    listed = _in_env_example()
    assert listed["RECONCILER_BATCH_SIZE"] == "50"
    assert listed["RECONCILER_ENGINE"] == "1"
    assert listed["RECONCILER_INSECURE_WEBHOOKS"] == "0"
    assert listed["RECONCILER_POLL_INTERVAL_SECONDS"] == "2"
    assert listed["RUNWARE_API_URL"] == Settings().runware_api_url
    # Values to fill in are left empty, never an example secret.
    assert listed["RUNWARE_WEBHOOK_SECRET"] == ""
    assert listed["SUPABASE_SERVICE_ROLE_KEY"] == ""


def test_the_command_prints_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env-example"]) == 0
    assert capsys.readouterr().out == env_example()
