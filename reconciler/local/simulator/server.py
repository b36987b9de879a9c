"""The simulator's HTTP face: Runware's single `POST /v1` endpoint (also `POST /`), and the
generated videos at the URLs it hands out (`GET /video/...`, see videos.py).

HTTP concerns live here (JSON array bodies, Bearer or legacy `authentication` task, latency,
429/503 with Retry-After, status codes); what a task means is the simulator's business.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from reconciler.local.simulator.state import Json, random_uuid
from reconciler.local.simulator.videos import VIDEO_ROUTE, serve_video

if TYPE_CHECKING:
    from reconciler.local.simulator.core import RunwareSimulator

_FAULT_CODES = {429: "rateLimitExceeded", 503: "serviceUnavailable", 504: "timeoutProvider"}


def create_app(sim: RunwareSimulator) -> Starlette:
    async def tasks_endpoint(request: Request) -> Response:
        sim.state.begin_request()
        try:
            return await _serve(sim, request)
        finally:
            sim.state.end_request()

    async def video_endpoint(request: Request) -> Response:
        return await serve_video(sim, request)

    return Starlette(
        routes=[
            Route("/v1", tasks_endpoint, methods=["POST"]),
            Route("/", tasks_endpoint, methods=["POST"]),
            Route(VIDEO_ROUTE, video_endpoint, methods=["GET"]),
        ]
    )


def _errors(status: int, *errors: Json, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"errors": list(errors)}, status_code=status, headers=headers)


def _key_matches(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


def _authenticated(request: Request, tasks: list[Json], api_key: str) -> bool:
    """Bearer header (current SDKs) or a leading `authentication` task (legacy)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    bearer_ok = scheme.lower() == "bearer" and _key_matches(token.strip(), api_key)
    if tasks and tasks[0].get("taskType") == "authentication":
        return bearer_ok or _key_matches(tasks[0].get("apiKey"), api_key)
    return bearer_ok


async def _serve(sim: RunwareSimulator, request: Request) -> Response:
    counters = sim.state.counters
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        body = None
    if not isinstance(body, list) or not all(isinstance(task, dict) for task in body):
        counters.requests_malformed += 1
        return _errors(
            400,
            {
                "code": "invalidRequestBody",
                "message": "The request body must be a JSON array of task objects.",
            },
        )
    tasks: list[Json] = body
    if not _authenticated(request, tasks, sim.config.api_key):
        counters.requests_unauthorised += 1
        return _errors(
            401,
            {
                "code": "invalidApiKey",
                "message": "Invalid API key. Get one at https://my.runware.ai/keys",
            },
        )
    counters.requests_by_task_type.update({str(task.get("taskType")) for task in tasks})
    polled = [
        task["taskUUID"]
        for task in tasks
        if task.get("taskType") == "getResponse" and isinstance(task.get("taskUUID"), str)
    ]
    # Polls count as "in service" for the whole request, latency included, so two requests
    # for the same task that overlap in time are observable.
    in_service = sim.state.begin_polls(polled)
    try:
        api = sim.config.api
        if api.latency_seconds > 0:
            await asyncio.sleep(api.latency_seconds)
        await sim.serving_gate.wait()
        if api.error_rate > 0 and sim.rng.random() < api.error_rate:
            counters.api_faults_injected += 1
            status = sim.rng.choice(api.error_statuses)
            return _errors(
                status,
                {
                    "code": _FAULT_CODES.get(status, "serviceUnavailable"),
                    "message": "The service is busy, retry later.",
                },
                headers={"Retry-After": str(api.retry_after_seconds)},
            )
        data, errors = await _run_tasks(sim, tasks)
    finally:
        sim.state.end_polls(in_service)
    # An answer with only errors is a client error; mixed answers are 200 with both keys.
    status = 200 if data or not errors else 400
    envelope: Json = {"data": data}
    if errors:
        envelope["errors"] = errors
    return JSONResponse(envelope, status_code=status)


async def _run_tasks(sim: RunwareSimulator, tasks: list[Json]) -> tuple[list[Json], list[Json]]:
    data: list[Json] = []
    errors: list[Json] = []
    for task in tasks:
        task_type = task.get("taskType")
        task_uuid = task.get("taskUUID")
        if task_type == "authentication":
            data.append(
                {"taskType": "authentication", "connectionSessionUUID": random_uuid(sim.rng)}
            )
        elif task_type == "getResponse" and isinstance(task_uuid, str):
            more_data, more_errors = sim.state.poll_answer(task_uuid, sim.now())
            data.extend(more_data)
            errors.extend(more_errors)
        elif task_type == "getResponse":
            errors.append(
                {
                    "taskType": "getResponse",
                    "code": "missingTaskUUID",
                    "message": "getResponse needs a taskUUID.",
                    "parameter": "taskUUID",
                }
            )
        elif task_type == "videoInference":
            more_data, more_errors = await sim.submit_task(task)
            data.extend(more_data)
            errors.extend(more_errors)
        else:
            errors.append(
                {
                    "taskType": task_type,
                    "taskUUID": task_uuid,
                    "code": "unsupportedTaskType",
                    "message": f"The simulator does not support taskType {task_type!r}.",
                }
            )
    return data, errors
