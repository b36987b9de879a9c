"""A throw-away PostgreSQL cluster from the system binaries, on loopback.

Used by `reconciler demo`, the test suite and the benchmarks. PostgreSQL refuses to run as
root, so when we are root the cluster is created and run as the `postgres` system user.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

SUPERUSER = "postgres"

# Durability is worthless for a throw-away cluster; these make tests and the demo fast.
_FAST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "unix_socket_directories": "",
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
}


class LocalPostgresError(RuntimeError):
    pass


def find_pg_binary(name: str) -> str:
    """`initdb`/`pg_ctl` from PATH, else from Debian's versioned directory (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    if candidates:
        return str(candidates[0])
    raise LocalPostgresError(
        f"{name} not found: install PostgreSQL (Debian: apt-get install postgresql)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalPostgres:
    """Start with `start()` or `with LocalPostgres() as pg:`; `pg.dsn(database)` to connect."""

    base_dir: Path | None = None
    port: int = 0

    def __post_init__(self) -> None:
        self._owns_dir = self.base_dir is None
        self._root = Path(self.base_dir or tempfile.mkdtemp(prefix="reconciler-pg-"))
        self._data = self._root / "data"
        self._log = self._root / "postgres.log"
        self._running = False
        # Set by stop(): a start() that only gets the lock afterwards (a thread that was slow to
        # begin) must not bring up a cluster nobody will stop.
        self._stopped = False
        # Held by start() and stop(): a stop during a start (from another thread, as when an
        # `asyncio.to_thread(pg.start)` is cancelled) waits for the start, then stops it.
        self._lock = threading.Lock()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run_as_owner(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=False)

    def _checked(self, argv: list[str]) -> None:
        done = self._run_as_owner(argv)
        if done.returncode != 0:
            log = self._log.read_text() if self._log.exists() else ""
            raise LocalPostgresError(
                f"{' '.join(argv[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )

    def start(self) -> LocalPostgres:
        """Create (first time) and start the cluster. A start that fails half-way stops
        whatever it started and removes its directory before raising."""
        with self._lock:
            if self._stopped:
                raise LocalPostgresError("this cluster was stopped; it cannot start again")
            try:
                self._start()
            except BaseException:
                self._stop()
                raise
        return self

    def _start(self) -> None:
        if os.geteuid() == 0:
            # The postgres user must own (and be able to reach) everything it writes.
            self._root.chmod(0o755)
            shutil.chown(self._root, user="postgres", group="postgres")
        if not (self._data / "PG_VERSION").exists():
            self._checked(
                [
                    find_pg_binary("initdb"),
                    "-D",
                    str(self._data),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        self.port = self.port or free_port()
        options = " ".join(f"-c {k}={v!s}" if v else f"-c {k}=''" for k, v in self._settings())
        # Set before pg_ctl runs: if it fails (a -t timeout, say) the server may be up
        # regardless, and stop() must stop it. Not when a server (not ours) holds the directory.
        self._running = not (self._data / "postmaster.pid").exists()
        self._checked(
            [
                find_pg_binary("pg_ctl"),
                "-D",
                str(self._data),
                "-l",
                str(self._log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        self._running = True

    def _settings(self) -> list[tuple[str, str]]:
        return [("port", str(self.port)), *_FAST_SETTINGS.items()]

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._stop()

    def _stop(self) -> None:
        if self._running:
            self._run_as_owner(
                [find_pg_binary("pg_ctl"), "-D", str(self._data), "-m", "immediate", "-w", "stop"]
            )
            self._running = False
        if self._owns_dir:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
