"""Every file the repository's code and documents point at exists in the repository, and
nothing points outside it (no relative path that climbs above the repository, no absolute path
into a workstation): the facts the code relies on live in docs/, in the project's own words."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A path into one of the repository's own folders, as comments and docs write them (a quoted
# string is data, such as an object path in a bucket, and is not read as a pointer).
_POINTER = re.compile(
    r"(?<![\w./'\"-])((?:reconciler|tests|bench|docs|supabase|scripts)/[\w./*{}-]*[\w*}])"
)
_MARKDOWN_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# A document reached by climbing out of the repository, or by an absolute workstation path.
_OUTSIDE = re.compile(
    r"\.\./[\w.-]+/[\w.-]+\.md\b|(?<![\w.])/(?:work|home|root|tmp)/[\w.-]+/[\w./-]+\.md\b"
)
# Named on purpose though not in the tree, each for its reason.
_NOT_FILES = {
    "bench/results.json",  # written by a bench run, git-ignored
    "tests/unit/test_x.py",  # the README's placeholder for "a test file"
    "reconciler/migrations",  # where the wheel build puts supabase/migrations
    "reconciler/uninstall.sql",  # likewise for supabase/uninstall.sql
    "supabase/supabase-js",  # the npm package's repository, not a path
}


def _tracked_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.sql", "*.toml", "scripts/*", "Procfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def _exists(pointer: str) -> bool:
    pointer = pointer.rstrip(".")
    if pointer in _NOT_FILES:
        return True
    if "{" in pointer:  # a template such as {project_id}/{job_id}.mp4, not a file
        return True
    if "*" in pointer:
        return any(ROOT.glob(pointer))
    return (ROOT / pointer).exists()


def test_no_file_points_outside_the_repository() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _tracked_text_files()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _OUTSIDE.search(line)
    ]
    assert not offenders, f"pointers outside the repository: {offenders}"


def test_every_path_named_in_code_and_docs_exists() -> None:
    missing = []
    for path in _tracked_text_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pointer in _POINTER.findall(line):
                if not _exists(pointer):
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {pointer}")
    assert not missing, "paths that do not exist:\n" + "\n".join(missing)


def test_every_markdown_link_to_a_file_resolves() -> None:
    missing = []
    for path in _tracked_text_files():
        if path.suffix != ".md":
            continue
        for target in _MARKDOWN_LINK.findall(path.read_text()):
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            if not (path.parent / target).exists():
                missing.append(f"{path.relative_to(ROOT)}: {target}")
    assert not missing, f"links to files that do not exist: {missing}"
