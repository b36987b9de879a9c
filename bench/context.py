"""What every workload gets: the throw-away PostgreSQL, a folder for logs, settings helpers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from bench.database import BenchDatabases

ADMIN_TOKEN = secrets.token_urlsafe(32)
WEBHOOK_SECRET = secrets.token_urlsafe(24)


@dataclass
class BenchContext:
    databases: BenchDatabases
    log_dir: Path
    console: Console
    quick: bool

    def say(self, message: str) -> None:
        self.console.log(message)

    def service_env(self, database_url: str, runware_url: str, api_key: str) -> dict[str, str]:
        """The service's required settings; every other knob keeps its default unless a
        workload says otherwise (and the table's notes say which)."""
        return {
            "DATABASE_URL": database_url,
            "RECONCILER_ADMIN_TOKEN": ADMIN_TOKEN,
            "RUNWARE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "RUNWARE_API_KEY": api_key,
            "RUNWARE_API_URL": runware_url,
        }
