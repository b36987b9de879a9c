"""A real PgBouncer (Debian's `pgbouncer` package, installed by scripts/setup) in front of a
test cluster, on a free loopback port: the pooler Supabase's port 6543 stands for.

PgBouncer refuses to run as root; as root it runs as the `postgres` user, like the clusters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from reconciler.local.localpg import free_port
from tests.waiting import wait_until

# Debian installs it outside a normal user's PATH.
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
# Generous: it only bounds a failure.
_START_TIMEOUT_SECONDS = 30.0


def _config(directory: Path, port: int, target_port: int, pool_mode: str, servers: int) -> str:
    return f"""[databases]
* = host=127.0.0.1 port={target_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / "users.txt"}
pool_mode = {pool_mode}
default_pool_size = {servers}
max_client_conn = 200
logfile = {directory / "pgbouncer.log"}
pidfile = {directory / "pgbouncer.pid"}
"""


async def _accepts(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


def _prepare(target_port: int, pool_mode: str, servers: int) -> tuple[Path, int]:
    """A directory with PgBouncer's configuration, owned by the user it runs as; its port."""
    directory = Path(tempfile.mkdtemp(prefix="reconciler-pgbouncer-"))
    port = free_port()
    (directory / "users.txt").write_text('"postgres" ""\n')
    config = _config(directory, port, target_port, pool_mode, servers)
    (directory / "pgbouncer.ini").write_text(config)
    if os.geteuid() == 0:
        directory.chmod(0o755)
        for path in (directory, *directory.iterdir()):
            shutil.chown(path, user="postgres", group="postgres")
    return directory, port


def _log_text(directory: Path) -> str:
    log = directory / "pgbouncer.log"
    return log.read_text() if log.exists() else ""


@contextlib.asynccontextmanager
async def running_pgbouncer(
    target_port: int,
    pool_mode: Literal["session", "transaction"] = "transaction",
    servers: int = 2,
) -> AsyncIterator[int]:
    """PgBouncer in `pool_mode` with at most `servers` server connections per database and
    user, forwarding every database to the cluster on `target_port`; yields its port."""
    directory, port = _prepare(target_port, pool_mode, servers)
    # PgBouncer refuses to run as root.
    as_owner = {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}
    process = await asyncio.create_subprocess_exec(
        PGBOUNCER,
        str(directory / "pgbouncer.ini"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        **as_owner,  # type: ignore[arg-type]
    )
    try:

        async def listening() -> bool:
            if process.returncode is not None:
                raise RuntimeError(
                    f"pgbouncer exited with {process.returncode}:\n{_log_text(directory)}"
                )
            return await _accepts(port)

        await wait_until(listening, timeout=_START_TIMEOUT_SECONDS)
        yield port
    finally:
        if process.returncode is None:
            process.kill()
        await asyncio.shield(process.wait())
        shutil.rmtree(directory, ignore_errors=True)
