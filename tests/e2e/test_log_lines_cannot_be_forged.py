"""Nothing a caller sends can break a log line: a path with `%0A`, a webhook job id with line
feeds, carriage returns, Unicode line separators or terminal escapes each stay inside the one
line that logs them — in the console format (every line starts with a timestamp, or is an
indented traceback line) and in the JSON format (every line parses, and says what was sent)."""

from __future__ import annotations

import json
import logging
import re
import sys

import httpx

from reconciler.observability.context import log_context
from reconciler.observability.logs import ConsoleFormatter, JsonFormatter
from tests import webhook_bodies as bodies
from tests.plugin import WEBHOOK_SECRET
from tests.processes import ServiceProcess

FORGED = "2026-01-01 00:00:00,000 ERROR reconciler.engine fake"
# A job id that, written raw, would end its line and start a forged one in each way a reader
# may split lines; \x1b[2K would erase the real line on a terminal.
HOSTILE_JOB = f"job\n{FORGED} LF\r{FORGED} CR\u2028{FORGED} LS\x85{FORGED} NEL\x1b[2K"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) ")
NOT_ALLOWED_URL = "https://evil.example/video.mp4"  # the job's warning names it: it is logged


def _record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = None
    if exc is not None:
        try:
            raise exc
        except BaseException:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "reconciler.test", logging.WARNING, __file__, 1, message, args, exc_info
    )


def _assert_console_lines_are_records(output: str) -> None:
    for line in output.splitlines():
        assert RECORD_START.match(line) or line.startswith("  "), f"forged line: {line!r}"


def test_a_console_record_is_one_line_whatever_it_carries() -> None:
    with log_context(job_id=HOSTILE_JOB):
        line = ConsoleFormatter().format(_record("webhook for job %s", HOSTILE_JOB))
    assert len(line.splitlines()) == 1
    # Escaped, not dropped: the reader sees what came, in the message and in the context.
    assert line.count("job\\n2026-01-01") == 2
    for escaped in ("\\r", "\\u2028", "\\x85", "\\x1b[2K"):
        assert escaped in line


def test_a_traceback_cannot_pose_as_a_record() -> None:
    line = ConsoleFormatter().format(_record("failed", exc=ValueError(f"bad\n{FORGED}\r")))
    head, *traceback = line.split("\n")
    assert RECORD_START.match(head)
    assert traceback
    assert all(t.startswith("  ") for t in traceback)  # indented: continuation, not a record
    assert "\\r" in traceback[-1]


def test_a_json_record_is_one_line_and_says_what_was_sent() -> None:
    with log_context(job_id=HOSTILE_JOB):
        line = JsonFormatter().format(
            _record("webhook for job %s", HOSTILE_JOB, exc=ValueError(HOSTILE_JOB))
        )
    assert len(line.splitlines()) == 1
    parsed = json.loads(line)
    assert parsed["job_id"] == HOSTILE_JOB
    assert parsed["message"] == f"webhook for job {HOSTILE_JOB}"
    assert HOSTILE_JOB in parsed["exception"]


async def _send_hostile_requests(service: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        # httpx sends the path as written; the server decodes %0A into a line feed.
        missing = await client.get("/%0A2026-01-01%2000:00:00,000%20ERROR%20fake%0D%1B[2K")
        webhook = await client.post(
            "/webhooks/runware",
            params={"token": WEBHOOK_SECRET},
            json=bodies.flat_success(HOSTILE_JOB, NOT_ALLOWED_URL),
        )
    assert missing.status_code == 404
    assert webhook.status_code == 422  # not a task id (nor an allowed URL): a warning names it


async def test_console_output_of_the_service_has_no_forged_lines(
    service_env: dict[str, str],
) -> None:
    env = service_env | {"RECONCILER_LOG_FORMAT": "console"}
    service = ServiceProcess(env, capture_output=True)
    await service.start()
    try:
        await _send_hostile_requests(service)
    finally:
        output = await service.stop_and_read()

    _assert_console_lines_are_records(output)
    path_lines = [line for line in output.splitlines() if "GET /\\n2026" in line]
    assert len(path_lines) == 1
    assert "404" in path_lines[0]
    job_lines = [line for line in output.splitlines() if "not written" in line]
    assert len(job_lines) == 1
    assert "job\\n2026-01-01" in job_lines[0]


async def test_json_output_of_the_service_parses_line_by_line(
    service_env: dict[str, str],
) -> None:
    service = ServiceProcess(service_env | {"RECONCILER_LOG_FORMAT": "json"}, capture_output=True)
    await service.start()
    try:
        await _send_hostile_requests(service)
    finally:
        output = await service.stop_and_read()

    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    [job_line] = [line for line in lines if "not written" in line["message"]]
    assert job_line["job_id"] == HOSTILE_JOB
    assert any(line["message"].startswith("GET /\n2026-01-01") for line in lines)
