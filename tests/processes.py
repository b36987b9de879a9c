"""A server in its own OS process, on a free loopback port: `reconciler serve` by default, or any
module that takes `--port`. Start it, wait until it is ready, signal it, stop it, read what it
printed or how much memory it holds.

The e2e tests use it to kill a replica, stop one, or run two; the bench to keep each server in a
process of its own, so that the bench process only generates load and reads results."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from asyncio.subprocess import STDOUT
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from reconciler.local.localpg import free_port
from tests.cli import CHILD_DIRECTORY, clean_environment
from tests.waiting import wait_until

# `python -m reconciler serve --host 127.0.0.1`; the port is appended.
SERVE = ("-m", "reconciler", "serve", "--host", "127.0.0.1")
# Generous: it only bounds a failure, and a loaded machine can take seconds to import the app.
_START_TIMEOUT_SECONDS = 60.0
# Leaving an `async with` block stops the server as an operator would: SIGTERM, then SIGKILL
# once this grace is over.
_STOP_GRACE_SECONDS = 15.0
_READ_OUTPUT_SECONDS = 30.0


@dataclass
class ServiceProcess:
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    # What runs: `python <arguments> --port <port>`; ready once `ready_path` answers 200.
    arguments: tuple[str, ...] = SERVE
    ready_path: str = "/readyz"
    # Where its output (stdout and stderr together) goes. Neither: nowhere. capture_output:
    # kept, for `stop_and_read`. log_path: written to that file (the bench keeps its logs).
    capture_output: bool = False
    log_path: Path | None = None
    process: asyncio.subprocess.Process | None = None
    # Set by stop(): a start() still spawning at that moment kills what it spawned.
    _stopped: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def __aenter__(self) -> ServiceProcess:
        return await self.start()

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        await self.stop(grace_seconds=_STOP_GRACE_SECONDS)

    async def start(self) -> ServiceProcess:
        """Spawn and wait until `ready_path` answers 200. If that fails or is cancelled, the
        process is killed before the error propagates: it never outlives a start that did not
        finish."""
        assert self.process is None or self.process.returncode is not None, "already running"
        assert not (self.capture_output and self.log_path), "one destination for the output"
        self._stopped = False
        self.process = await self._spawn()
        try:
            if self._stopped:
                raise RuntimeError("stopped while starting")
            try:
                await wait_until(self._ready, timeout=_START_TIMEOUT_SECONDS)
            except TimeoutError as error:
                raise TimeoutError(f"{self._name} did not become ready{self._see_log}") from error
        except BaseException:
            await _shielded_kill(self.process)
            raise
        return self

    async def _spawn(self) -> asyncio.subprocess.Process:
        stdout: int | IO[bytes] = asyncio.subprocess.DEVNULL
        stderr = asyncio.subprocess.DEVNULL
        with contextlib.ExitStack() as files:
            if self.log_path is not None:
                # The child writes to its own copy of the descriptor; ours is closed at once.
                stdout, stderr = files.enter_context(self.log_path.open("wb")), STDOUT
            elif self.capture_output:
                stdout, stderr = asyncio.subprocess.PIPE, STDOUT
            return await asyncio.create_subprocess_exec(
                *(sys.executable, *self.arguments, "--port", str(self.port)),
                env=clean_environment(self.env),
                cwd=CHILD_DIRECTORY,  # no `.env` of the checkout leaks in
                stdin=asyncio.subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )

    @property
    def _name(self) -> str:
        return f"`python {' '.join(self.arguments)}`"

    @property
    def _see_log(self) -> str:
        return "" if self.log_path is None else f"; see {self.log_path}"

    async def _ready(self) -> bool:
        assert self.process is not None
        if self.process.returncode is not None:
            raise RuntimeError(f"{self._name} exited with {self.process.returncode}{self._see_log}")
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{self.url}{self.ready_path}")).status_code == 200
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

    def rss_kib(self) -> dict[str, int]:
        """VmRSS and VmHWM (the peak) from /proc, in KiB."""
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(rest.split()[0])
        return found

    async def stop_and_read(self) -> str:
        """SIGTERM, then everything the process printed (needs capture_output). If reading
        fails or is cancelled, the process is killed before the error propagates."""
        assert self.process is not None
        assert self.capture_output
        try:
            if self.process.returncode is None:
                self.terminate()
            output, _ = await asyncio.wait_for(self.process.communicate(), _READ_OUTPUT_SECONDS)
        except BaseException:
            await _shielded_kill(self.process)
            raise
        return output.decode()

    async def stop(self, grace_seconds: float = 0.0) -> None:
        """SIGKILL at once, or SIGTERM first and SIGKILL only after `grace_seconds`. Whatever
        interrupts the grace (a cancellation too), the process is killed and reaped."""
        self._stopped = True
        if self.process is None:
            return
        try:
            if grace_seconds > 0 and self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.process.wait()), grace_seconds)
        finally:
            await _shielded_kill(self.process)


async def _shielded_kill(process: asyncio.subprocess.Process) -> None:
    """SIGKILL and reap. The signal goes out before any await, so even a cancelled caller
    leaves no process behind; the wait for the exit status is shielded from cancellation."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    await asyncio.shield(process.wait())
