"""No process outlives the run that started it: find the leftovers, name them, kill them.

Used by the test session (tests/plugin.py) and by the bench and soak runners (`python -m
bench`, `python -m bench.soak`). A run first makes itself a *child subreaper*: a descendant
whose parent exits (`pg_ctl start` does that on purpose, a killed wrapper does it by accident)
is then reparented to the run instead of to init, so walking the process tree down from the
run finds every process it started, however it was started. At the end, whatever is still
alive below the run gets a short grace to finish exiting, then is reported and SIGKILLed.

Linux only (it reads /proc); elsewhere the functions find nothing and change nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tests.waiting import poll_until

_PROC = Path("/proc")
_PR_SET_CHILD_SUBREAPER = 36
# A process in one of these states has exited (zombie: waiting to be reaped) and holds nothing.
_DEAD_STATES = frozenset("ZXx")


@dataclass(frozen=True)
class LiveProcess:
    pid: int
    ppid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} (parent {self.ppid}): {self.command}"


def become_subreaper() -> bool:
    """Have orphaned descendants reparented to this process (Linux); True if it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:  # gone meanwhile
        return None
    # "pid (comm) state ppid …"; comm may hold spaces and parentheses, so split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def command_line(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
        if raw:
            parts = raw.rstrip(b"\0").split(b"\0")
            return shlex.join(part.decode(errors="replace") for part in parts)
        return f"[{(_PROC / str(pid) / 'comm').read_text().strip()}]"
    except OSError:
        return "[exited]"


def is_alive(pid: int) -> bool:
    """True while `pid` exists and has not exited (a zombie has exited)."""
    found = _parent_and_state(pid)
    return found is not None and found[1] not in _DEAD_STATES


def descendants(root: int | None = None) -> list[LiveProcess]:
    """Every living (non-zombie) process below `root` (default: this process), parents first."""
    if not _PROC.is_dir():
        return []
    root = os.getpid() if root is None else root
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        found = _parent_and_state(int(entry.name))
        if found is not None:
            children.setdefault(found[0], []).append((int(entry.name), found[1]))
    alive: list[LiveProcess] = []
    parents = [root]
    while parents:
        parent = parents.pop(0)
        for pid, state in sorted(children.get(parent, [])):
            parents.append(pid)  # a zombie's children (if any) were reparented already
            if state not in _DEAD_STATES:
                alive.append(LiveProcess(pid, parent, command_line(pid)))
    return alive


def kill(processes: list[LiveProcess], timeout: float = 5.0) -> None:
    """SIGKILL each (already gone is fine) and wait up to `timeout` seconds until none lives."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
    poll_until(lambda: not any(is_alive(p.pid) for p in processes), timeout)


def reap_exited_children() -> None:
    """Collect exited children nobody waits for: as a subreaper this process adopts orphans,
    and their zombies would otherwise outlast it. Only once nothing else waits for this
    process's children (at the very end of a run)."""
    if not _PROC.is_dir():
        return
    me = os.getpid()
    for entry in _PROC.iterdir():
        if entry.name.isdigit() and _parent_and_state(int(entry.name)) == (me, "Z"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(int(entry.name), os.WNOHANG)


def leftovers(
    grace_seconds: float = 5.0, ignore: Callable[[LiveProcess], bool] = lambda _: False
) -> list[LiveProcess]:
    """The descendants still alive after up to `grace_seconds` for them to finish exiting.

    The grace is for processes already on their way out (a server told to stop a moment
    ago); a process that is not exiting is reported after the full grace."""
    found: list[LiveProcess] = []

    def all_gone() -> bool:
        nonlocal found
        found = [p for p in descendants() if not ignore(p)]
        return not found

    poll_until(all_gone, grace_seconds, interval=0.05)
    return found


def kill_leftovers(
    grace_seconds: float = 5.0, ignore: Callable[[LiveProcess], bool] = lambda _: False
) -> list[LiveProcess]:
    """`leftovers()`, SIGKILLed, and every exited child reaped; returns what was killed."""
    found = leftovers(grace_seconds, ignore)
    kill(found)
    reap_exited_children()
    return found


def describe(processes: list[LiveProcess], who: str) -> str:
    lines = [f"{len(processes)} process(es) started by {who} outlived it (now killed):"]
    lines += [f"  {p}" for p in processes]
    return "\n".join(lines)


def run_guarded(main: Callable[[], int], who: str, out: TextIO | None = None) -> int:
    """Run `main()` as the owner of every process it starts; at exit, kill and report leftovers.

    Returns main's exit status, or 1 if it succeeded but left a process behind."""
    become_subreaper()
    code = 1
    try:
        code = main()
    finally:
        leaked = kill_leftovers()
        if leaked:
            print(describe(leaked, who), file=out or sys.stderr, flush=True)
    return code or (1 if leaked else 0)
