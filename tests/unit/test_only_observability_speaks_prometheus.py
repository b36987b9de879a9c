"""prometheus_client stays behind reconciler/observability/: everything else reports through
`Observer` and serves `ServiceMetrics.render()`, so swapping the metrics library touches one
package (the claim reconciler/observability/__init__.py makes)."""

from __future__ import annotations

import ast
from pathlib import Path

import reconciler

PACKAGE = Path(reconciler.__file__).parent
LIBRARY = "prometheus_client"


def _imports_library(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        if any(name == LIBRARY or name.startswith(f"{LIBRARY}.") for name in names):
            return True
    return False


def test_no_module_outside_observability_imports_prometheus_client() -> None:
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if _imports_library(path.read_text(encoding="utf-8"))
    }
    assert importers  # the check finds the imports that do exist
    assert {p for p in importers if not p.startswith("observability/")} == set()


def test_the_check_sees_both_import_forms() -> None:
    assert _imports_library("import prometheus_client.core")
    assert _imports_library("from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4")
    assert not _imports_library("import prometheus_clientele")
