"""`.env` in the working directory is read, as `.env.example` tells adopters to copy it there;
a variable in the environment wins over the file."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.cli import run_reconciler


async def _run(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args, cwd=str(cwd))
    return done.returncode, done.stdout, done.stderr


async def test_status_reads_the_database_url_from_dot_env(
    database_url: str, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"# copied from .env.example\nDATABASE_URL={database_url}\n")

    code, out, err = await _run({}, tmp_path, "status", "--json")

    assert code == 0, err
    assert '"replicas"' in out


async def test_a_bad_value_in_dot_env_is_named(database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL={database_url}\nRECONCILER_LOG_LEVEL=loud\n")

    code, _, err = await _run({}, tmp_path, "status")

    assert code == 2
    assert "RECONCILER_LOG_LEVEL" in err


async def test_the_environment_wins_over_dot_env(database_url: str, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DATABASE_URL=mysql://x/y\nRECONCILER_LOG_LEVEL=loud\n")

    code, _, err = await _run(
        {"DATABASE_URL": database_url, "RECONCILER_LOG_LEVEL": "info"}, tmp_path, "status"
    )

    assert code == 0, err
