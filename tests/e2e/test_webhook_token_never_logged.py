"""No token ever appears in logs: the real `reconciler serve` process, at debug level, is sent
webhooks with the right and with a wrong token; its whole output is then searched."""

from __future__ import annotations

import httpx

from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET
from tests.processes import ServiceProcess

WRONG_TOKEN = "wrong-token-that-must-not-be-logged"


async def test_tokens_are_not_logged(service_env: dict[str, str]) -> None:
    service = ServiceProcess(service_env | {"RECONCILER_LOG_LEVEL": "debug"}, capture_output=True)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            for token in (WEBHOOK_SECRET, WRONG_TOKEN):
                await client.post(
                    "/webhooks/runware",
                    params={"token": token},
                    json=bodies.flat_success(J.job_1, bodies.video_url("x")),
                )
    finally:
        text = await service.stop_and_read()

    assert "/webhooks/runware" in text  # the requests were logged…
    assert WEBHOOK_SECRET not in text  # …without their tokens
    assert WRONG_TOKEN not in text
