"""A check whose answer is large (a full-access check of a project with many clips) is rendered
off the event loop: /healthz, webhooks and other checks are answered meanwhile. (A signed-in
user's answer is bounded instead: test_one_user_check_is_bounded.py.)"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from starlette.responses import JSONResponse

from reconciler.local.simulator import RunwareSimulator
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import new_project
from tests.waiting import wait_until

CLIPS = 5_000
DONE_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/{}.mp4"
# Only bounds a failure: on an event loop held by the render, /healthz can never answer.
DEADLINE_SECONDS = 20.0


async def test_healthz_answers_while_a_large_check_answer_is_rendered(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project = await new_project(db, {str(uuid4()): DONE_URL.format(n) for n in range(CLIPS)})
    rendering = threading.Event()
    healthz_answered = threading.Event()
    answered_during_render: list[bool] = []
    render = JSONResponse.render

    def render_waiting_for_healthz(self: JSONResponse, content: Any) -> bytes:
        # The large answer's render holds on until /healthz has been answered: possible only
        # when the render does not hold the event loop.
        if isinstance(content, dict) and len(content.get("clips") or {}) == CLIPS:
            rendering.set()
            answered_during_render.append(healthz_answered.wait(DEADLINE_SECONDS))
        return render(self, content)

    monkeypatch.setattr(JSONResponse, "render", render_waiting_for_healthz)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        run_service(service_env) as url,
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        check = asyncio.create_task(
            client.post("/check-clips-status", json={"project_id": str(project)}, headers=headers)
        )
        await wait_until(rendering.is_set)
        health = await client.get("/healthz")
        healthz_answered.set()
        answer = await check

    assert health.status_code == 200
    assert answered_during_render == [True]
    assert answer.status_code == 200
    assert answer.json()["total_clips"] == CLIPS
