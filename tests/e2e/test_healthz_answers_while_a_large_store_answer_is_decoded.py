"""A full-access check of a project with a large `clips` column gets a large answer from the
database; decoding that JSON never holds the event loop, on either transport: /healthz,
webhooks and other checks are answered meanwhile. (Rendering the check's answer is the other
half: test_healthz_answers_while_a_large_check_renders.py.)"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest

from tests.plugin import RunningService
from tests.projects import new_project
from tests.waiting import wait_until

CLIPS = 20_000
DONE_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/{}.mp4"
# Far above anything but the project's clips: ~1.5 MB of JSON text.
LARGE_CHARS = 1_000_000
# Only bounds a failure: a decode on the event loop keeps /healthz from ever answering.
DEADLINE_SECONDS = 20.0


async def test_healthz_answers_while_a_large_store_answer_is_decoded(
    service: RunningService, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = await new_project(db, {str(uuid4()): DONE_URL.format(n) for n in range(CLIPS)})
    decoding = threading.Event()
    healthz_answered = threading.Event()
    answered_during_decode: list[bool] = []
    held = threading.Lock()
    loads = json.loads

    def loads_waiting_for_healthz(text: str | bytes, *args: Any, **kwargs: Any) -> Any:
        # The first large decode — the service reading the database's answer, whichever
        # transport carries it — holds on until /healthz has been answered: possible only when
        # the decode does not hold the event loop.
        if len(text) > LARGE_CHARS and held.acquire(blocking=False):
            decoding.set()
            answered_during_decode.append(healthz_answered.wait(DEADLINE_SECONDS))
        return loads(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", loads_waiting_for_healthz)
    async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
        check = asyncio.create_task(
            client.post(
                "/check-clips-status", json={"project_id": str(project)}, headers=service.headers()
            )
        )
        await wait_until(decoding.is_set)
        health = await client.get("/healthz")
        healthz_answered.set()
        answer = await check

    assert health.status_code == 200
    assert answered_during_decode == [True]
    assert answer.status_code == 200
    assert answer.json()["total_clips"] == CLIPS
