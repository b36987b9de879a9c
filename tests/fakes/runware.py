"""`RunwareApi` in memory: scripted task statuses, every request recorded, and a gate that
holds requests while a test looks at what happens meanwhile (leases during a long round)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from reconciler.clips import Processing, TaskStatus


class ScriptedRunware:
    """Implements `reconciler.ports.RunwareApi`. A task not in `statuses` is still working."""

    def __init__(self) -> None:
        self.statuses: dict[str, TaskStatus | Exception] = {}
        self.requests: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = 0  # requests held at the gate

    async def get_statuses(self, task_uuids: Sequence[str]) -> dict[str, TaskStatus]:
        self.requests.append(list(task_uuids))
        self.waiting += 1
        try:
            await self.gate.wait()
        finally:
            self.waiting -= 1
        answer: dict[str, TaskStatus] = {}
        for task in task_uuids:
            status = self.statuses.get(task, Processing())
            if isinstance(status, Exception):
                raise status
            answer[task] = status
        return answer

    async def aclose(self) -> None:
        pass
