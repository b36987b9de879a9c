"""With RECONCILER_LOG_FORMAT=json every log line is one JSON object with timestamp, level,
logger and message, plus request_id / job_id / project_id where known; every response echoes
its request id; tokens stay out."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

import httpx
import pytest

from reconciler.observability.context import log_context
from reconciler.observability.logs import ConsoleFormatter, JsonFormatter
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET, ServiceFactory
from tests.processes import ServiceProcess

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "reconciler.engine", logging.WARNING, __file__, 1, message, args, exc_info
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_a_json_line_has_the_fields_and_the_context() -> None:
    with log_context(request_id="req-1", job_id="job-9", project_id="p-1"):
        line = JsonFormatter().format(_record("reconcile %s failed", "p-1", exc=True))
    parsed = json.loads(line)
    assert "\n" not in line
    assert parsed["level"] == "warning"
    assert parsed["logger"] == "reconciler.engine"
    assert parsed["message"] == "reconcile p-1 failed"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", parsed["timestamp"])
    assert (parsed["request_id"], parsed["job_id"], parsed["project_id"]) == (
        "req-1",
        "job-9",
        "p-1",
    )
    assert "ValueError: boom" in parsed["exception"]


def test_fields_outside_any_context_are_left_out() -> None:
    parsed = json.loads(JsonFormatter().format(_record("idle")))
    assert set(parsed) == {"timestamp", "level", "logger", "message"}


def test_console_lines_carry_the_context_too() -> None:
    with log_context(request_id="req-1"), log_context(job_id="job-9"):
        line = ConsoleFormatter().format(_record("hello"))
    assert line.endswith("WARNING reconciler.engine hello [request_id=req-1 job_id=job-9]")
    assert ConsoleFormatter().format(_record("hello")).endswith("reconciler.engine hello")


async def test_a_request_and_its_work_share_the_request_id(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="reconciler.access")  # probes log at debug
    caplog.handler.setFormatter(JsonFormatter())  # formats when emitted, while context is set
    body = bodies.flat_success(J.job_1, "https://evil.example/video.mp4")  # URL not allowed
    async with run_service(service_env) as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.post(
            "/webhooks/runware",
            params={"token": WEBHOOK_SECRET},
            json=body,
            headers={"X-Request-ID": "trace-42"},
        )
        forged = [
            await client.get("/healthz", headers={"X-Request-ID": bad})
            for bad in ('x" "level": "error', "a" * 65, "")
        ]
    assert response.status_code == 422
    assert response.headers["x-request-id"] == "trace-42"
    generated = [answer.headers["x-request-id"] for answer in forged]
    assert all(GENERATED_ID.fullmatch(request_id) for request_id in generated)
    assert len(set(generated)) == len(generated)

    lines = _lines(caplog.text)
    rejected = [line for line in lines if "not written" in line["message"]]
    assert [(r["request_id"], r["job_id"]) for r in rejected] == [("trace-42", J.job_1)]
    access = {line["request_id"]: line for line in lines if line["logger"] == "reconciler.access"}
    assert access["trace-42"]["message"].startswith("POST /webhooks/runware 422")
    assert all(access[r]["message"].startswith("GET /healthz 200") for r in generated)
    # (The test's own httpx client logs its URL, token included; the service's loggers don't.)
    service_lines = [line for line in lines if not line["logger"].startswith("httpx")]
    assert WEBHOOK_SECRET not in json.dumps(service_lines)


async def test_reconciler_serve_writes_json_lines(service_env: dict[str, str]) -> None:
    # debug: accepted webhooks are logged at debug (routine traffic, counted by the metrics)
    env = service_env | {"RECONCILER_LOG_FORMAT": "json", "RECONCILER_LOG_LEVEL": "debug"}
    service = ServiceProcess(env, capture_output=True)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as client:
            response = await client.post(
                "/webhooks/runware",
                params={"token": WEBHOOK_SECRET},
                json=bodies.flat_success(J.job_1, bodies.video_url("x")),
            )
    finally:
        output = await service.stop_and_read()

    assert response.status_code == 200
    request_id = response.headers["x-request-id"]
    lines = _lines(output)  # every line must be JSON
    assert {"timestamp", "level", "logger", "message"} <= set(lines[0])
    assert any(line["logger"].startswith("uvicorn") for line in lines)  # uvicorn's lines too
    access = [line for line in lines if line.get("request_id") == request_id]
    assert [line["message"].split()[:3] for line in access] == [
        ["POST", "/webhooks/runware", "200"]
    ]
    assert WEBHOOK_SECRET not in output
