"""`.env.example` lists every setting the service reads, and README's table documents each."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_NAME = r"(?:RECONCILER_[A-Z_]+|SUPABASE_[A-Z_]+|RUNWARE_[A-Z_]+|DATABASE_URL|PORT)"


def _read_by_config() -> set[str]:
    source = (ROOT / "reconciler" / "config.py").read_text()
    return set(re.findall(rf'"({_NAME})"', source))


def _in_env_example() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(rf"^#? ?({_NAME})=", text, re.MULTILINE))


def _in_readme_table(known: set[str]) -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| variable | default | meaning |") :]
    table = table[: table.index("\n\n")]
    names = set(re.findall(rf"`({_NAME})`", table))
    # A row may name a pair as `RECONCILER_X_BASE_SECONDS` / `…_CAP_SECONDS`: the second is
    # the first with its last word(s) replaced.
    for first, suffix in re.findall(rf"`({_NAME})` / `…(_[A-Z_]+)`", table):
        words = first.split("_")
        names |= {"_".join(words[:cut]) + suffix for cut in range(1, len(words))} & known
    return names


def test_env_example_lists_every_setting() -> None:
    assert _read_by_config() - _in_env_example() == set()


def test_readme_documents_every_setting() -> None:
    known = _read_by_config()
    assert known - _in_readme_table(known) == set()


def test_env_example_lists_nothing_unknown() -> None:
    assert _in_env_example() - _read_by_config() == set()
