"""constraints.txt pins every runtime dependency at one version that pyproject.toml's range
allows, and the Dockerfile builds and installs with it (scripts/constraints regenerates it)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            assert _norm(name) not in pins, f"pinned twice: {name}"
            pins[_norm(name)] = Version(version)
    return pins


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = _norm(requirement.name)
        assert name in pins, (
            f"{requirement.name} is not in constraints.txt: run scripts/constraints"
        )
        assert requirement.specifier.contains(pins[name]), (
            f"constraints.txt pins {requirement.name}=={pins[name]},"
            f" outside {requirement.specifier}"
        )


def test_no_development_tool_is_pinned() -> None:
    pins = _pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = {_norm(Requirement(line).name) for line in project["optional-dependencies"]["dev"]}
    assert dev & pins.keys() == set()


def test_the_image_is_built_and_installed_with_the_constraints() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt ./" in dockerfile
    assert "pip wheel -c constraints.txt" in dockerfile
    assert "-c /wheels/constraints.txt clip-reconciler" in dockerfile
