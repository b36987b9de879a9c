"""Servers in their own OS process: `reconciler serve` and the bare endpoint.

Each runs as one uvicorn worker; the bench process only generates load and reads results.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from reconciler.local.localpg import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
_START_TIMEOUT_SECONDS = 60.0
_STOP_GRACE_SECONDS = 15.0
_OWN_PREFIXES = ("RECONCILER_", "RUNWARE_", "SUPABASE_", "DATABASE_URL", "PORT")


@dataclass(frozen=True)
class ServerProcess:
    url: str
    port: int
    pid: int

    def rss_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) from /proc, in KiB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0])
        return found


async def _ready(url: str, path: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{url}{path}")).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.asynccontextmanager
async def server_process(
    argv: list[str], env: Mapping[str, str], log_path: Path, ready_path: str, port: int
) -> AsyncIterator[ServerProcess]:
    """The server, from spawn to exit: whatever ends the block (its end, an error, a failed
    or cancelled start-up, a cancelled stop) leaves no process behind."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=base | dict(env),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = asyncio.get_running_loop().time() + _START_TIMEOUT_SECONDS
        while not await _ready(url, ready_path):
            if process.returncode is not None:
                raise RuntimeError(
                    f"{argv[2]} exited with {process.returncode} during start-up; see {log_path}"
                )
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"{argv[2]} did not become ready; see {log_path}")
            await asyncio.sleep(0.05)
        yield ServerProcess(url, port, process.pid)
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM, then SIGKILL after the grace. Cancelled meanwhile, it still kills the process
    (before its first await) and waits for the exit, shielded, before the cancellation goes on."""
    try:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE_SECONDS)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await asyncio.shield(process.wait())


def reconciler_service(
    env: Mapping[str, str], log_path: Path
) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """`python -m reconciler serve` on a free loopback port; ready once /readyz answers 200."""
    port = free_port()
    argv = [sys.executable, "-m", "reconciler", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port)]
    return server_process(argv, env, log_path, "/readyz", port)


def bare_endpoint(log_path: Path) -> contextlib.AbstractAsyncContextManager[ServerProcess]:
    """`python -m bench.bare_endpoint`: the HTTP bound for W2."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.bare_endpoint", "--port", str(port)]
    return server_process(argv, {}, log_path, "/healthz", port)
