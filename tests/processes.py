"""Running `reconciler serve` as a real OS process, to kill it, stop it, or run two."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass, field

import httpx

from reconciler.local.localpg import free_port
from tests.cli import clean_environment
from tests.waiting import wait_until


@dataclass
class ServiceProcess:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None
    # True: keep everything the process prints (stdout and stderr), for `stop_and_read`.
    capture_output: bool = False
    # Set by stop(): a start() still spawning at that moment kills what it spawned.
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ServiceProcess:
        """Spawn and wait until /readyz answers 200. If that fails or is cancelled, the process
        is killed before the error propagates: it never outlives a start that did not finish."""
        assert self.process is None or self.process.returncode is not None, "already running"
        self._stopped = False
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reconciler",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            env=clean_environment(self.env),
            stdout=asyncio.subprocess.PIPE if self.capture_output else asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.STDOUT if self.capture_output else asyncio.subprocess.DEVNULL,
        )
        try:
            if self._stopped:
                raise RuntimeError("stopped while starting")
            await wait_until(self._ready, timeout=30)
        except BaseException:
            await _shielded_kill(self.process)
            raise
        return self

    async def _ready(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise RuntimeError(f"`reconciler serve` exited with {self.process.returncode}")
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{self.url}/readyz")).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, leases stay behind."""
        assert self.process is not None
        self.process.kill()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def stop_and_read(self) -> str:
        """SIGTERM, then everything the process printed (needs capture_output)."""
        assert self.process is not None
        assert self.capture_output
        if self.process.returncode is None:
            self.terminate()
        output, _ = await asyncio.wait_for(self.process.communicate(), 30)
        return output.decode()

    async def stop(self) -> None:
        self._stopped = True
        if self.process is not None:
            await _shielded_kill(self.process)


async def _shielded_kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL and reap. The signal goes out before any await, so even a cancelled caller
    leaves no process behind; the wait for the exit status is shielded from cancellation."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await asyncio.shield(process.wait())
