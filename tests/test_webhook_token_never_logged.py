"""No token ever appears in logs: the real `reconciler serve` process, at debug level, is sent
webhooks with the right and with a wrong token; its whole output is then searched."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx

from reconciler.localpg import free_port
from tests import webhook_bodies as bodies
from tests.conftest import WEBHOOK_SECRET
from tests.waiting import wait_until

WRONG_TOKEN = "wrong-token-that-must-not-be-logged"


async def test_tokens_are_not_logged(service_env: dict[str, str]) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "RUNWARE_"))}
    env |= service_env | {"PORT": str(port), "RECONCILER_LOG_LEVEL": "debug"}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler",
        "serve",
        "--host",
        "127.0.0.1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:

            async def is_up() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(is_up, timeout=30)
            for token in (WEBHOOK_SECRET, WRONG_TOKEN):
                await client.post(
                    "/webhooks/runware",
                    params={"token": token},
                    json=bodies.flat_success("job-1", bodies.video_url("x")),
                )
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = await process.communicate()

    text = output.decode()
    assert "/webhooks/runware" in text  # the requests were logged…
    assert WEBHOOK_SECRET not in text  # …without their tokens
    assert WRONG_TOKEN not in text
