"""The README's module map ("How it works") names every module of the package, and names
nothing that does not exist: a newcomer reads the map, not the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_map() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it works", 1)[1]
    block = section.split("```", 2)[1]
    # The package's part of the map; the lines after it describe the other folders.
    return block.split("\nsupabase/migrations/", 1)[0]


def _modules_in_tree() -> set[str]:
    package = ROOT / "reconciler"
    return {
        path.name
        for path in package.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    }


def test_every_module_is_on_the_map() -> None:
    missing = {name for name in _modules_in_tree() if name not in _module_map()}
    assert not missing, f"modules missing from the README's module map: {sorted(missing)}"


def test_every_module_on_the_map_exists() -> None:
    named = set(re.findall(r"\b(\w+\.py)\b", _module_map()))
    stale = named - _modules_in_tree()
    assert not stale, f"the README's module map names modules that do not exist: {sorted(stale)}"


def test_every_package_is_on_the_map() -> None:
    packages = {
        f"{path.parent.name}/"
        for path in (ROOT / "reconciler").rglob("__init__.py")
        if path.parent.name != "reconciler"
    }
    missing = {name for name in packages if name not in _module_map()}
    assert not missing, f"packages missing from the README's module map: {sorted(missing)}"
