"""The version is written once, in pyproject.toml: `--version`, the heartbeat (`status`,
/admin) and the `reconciler_build_info` metric read the package metadata, and no module under
reconciler/ repeats it. LICENSE and CHANGELOG.md match what pyproject declares."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from reconciler import service_version
from reconciler.observability.metrics import ServiceMetrics

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]


def test_the_installed_metadata_is_pyprojects_version() -> None:
    # Stale metadata (an install older than pyproject.toml): reinstall, `scripts/setup`.
    assert metadata.version("clip-reconciler") == VERSION
    assert service_version() == VERSION


def test_no_module_repeats_the_version() -> None:
    literal = re.compile(rf"['\"]{re.escape(VERSION)}['\"]")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "reconciler").rglob("*.py")
        if literal.search(path.read_text())
    ]
    assert offenders == []


async def test_build_info_metric_carries_the_version() -> None:
    text = (await ServiceMetrics().render()).decode()
    assert f'reconciler_build_info{{version="{VERSION}"}} 1.0' in text


def test_license_file_is_the_declared_mit_license() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License")
    assert "Permission is hereby granted, free of charge" in license_text


def test_changelog_has_a_section_for_this_version_and_an_unreleased_one() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert VERSION in headings
    assert "0.1.0" in headings
