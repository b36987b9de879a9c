"""Every library a module under reconciler/ imports is a declared dependency in
pyproject.toml (PyJWT was imported but not declared: an install without the dev extras worked
only because another package happened to pull it in)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
    return {_normalized(m.group()) for r in project["dependencies"] if (m := names.match(r))}


def _imported_top_level_modules() -> dict[str, set[str]]:
    """Top-level module → the files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "reconciler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_a_declared_dependency() -> None:
    declared = _declared()
    providers = metadata.packages_distributions()
    undeclared: dict[str, list[str]] = {}
    for module, files in _imported_top_level_modules().items():
        if module in sys.stdlib_module_names or module in {"reconciler", "__future__"}:
            continue
        distributions = {_normalized(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = sorted(files)
    assert undeclared == {}, "declare these in pyproject.toml's dependencies"


def test_the_check_sees_the_libraries_the_code_uses() -> None:
    # The walk itself works: it finds imports that are known to be there.
    imported = _imported_top_level_modules()
    assert {"httpx", "asyncpg", "starlette", "jwt"} <= imported.keys()
