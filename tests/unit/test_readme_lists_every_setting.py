"""README.md's configuration table is the one rendered from the settings' declarations: every
setting appears with its default and its help, nothing stale stays (`python -m
reconciler.config --markdown` prints it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.config import DEFAULTS, Settings, env_names, main, markdown_table

ROOT = Path(__file__).resolve().parents[2]
_HEADER = "| variable | default | meaning |"


def _readme_table() -> str:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index(_HEADER) :]
    return table[: table.index("\n\n") + 1]


def _rows() -> dict[str, str]:
    """Variable → its default cell."""
    return dict(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \| ([^|]+) \|", _readme_table(), re.M))


def test_readme_table_is_the_rendered_declarations() -> None:
    assert _readme_table() == markdown_table(), (
        "regenerate README.md's configuration table: python -m reconciler.config --markdown"
    )


def test_every_setting_has_one_row_and_no_row_is_stale() -> None:
    names = re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", _readme_table(), re.M)
    assert sorted(names) == sorted(env_names().values())


def test_each_row_shows_the_declared_default() -> None:
    rows = _rows()
    assert rows["RECONCILER_BATCH_SIZE"].strip() == f"`{DEFAULTS.batch_size}`"
    assert rows["PORT"].strip() == f"`{DEFAULTS.port}`"
    assert rows["RECONCILER_LOG_FORMAT"].strip() == f"`{DEFAULTS.log_format}`"
    assert rows["RECONCILER_ALLOWED_URL_HOSTS"].strip() == "`vm.runware.ai,im.runware.ai`"
    assert rows["RUNWARE_API_KEY"].strip() == "—"


def test_every_setting_has_help() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no help"
        assert "\n" not in field.description, name
        assert "|" not in field.description, name  # it would split the table's row


def test_the_command_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--markdown"]) == 0
    assert capsys.readouterr().out == markdown_table()
