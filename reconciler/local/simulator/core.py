"""`RunwareSimulator`: jobs that finish on a clock, webhooks on finish, test controls, serving.

Usage in-process (tests, demo, benchmarks)::

    async with RunwareSimulator(SimulatorConfig(api_key="k", seed=1)) as sim:
        client = RunwareClient(sim.url, "k")
        sim.add_job(task_uuid, duration=0.5, webhook_url=receiver_url)
        ...
        assert sim.counters.overlapping_polls == 0
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from reconciler.local.serving import bind_tcp_socket, serve
from reconciler.local.simulator.config import FAILING_MODEL, ErrorShape, Outcome, SimulatorConfig
from reconciler.local.simulator.delivery import WebhookSender
from reconciler.local.simulator.server import create_app
from reconciler.local.simulator.state import Counters, Job, Json, SimState

_MAX_NUMBER_RESULTS = 4


class RunwareSimulator:
    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.rng = random.Random(self.config.seed)
        self.state = SimState(self.rng)
        self.app: Starlette = create_app(self)
        self._host = host
        self._port = port
        self._sender: WebhookSender | None = None
        self._wake = asyncio.Event()
        # Open unless a test holds requests in service (see `hold_requests`).
        self.serving_gate = asyncio.Event()
        self.serving_gate.set()
        self._base_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None

    # --- Lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> RunwareSimulator:
        """Start the jobs' clock and the webhook sender, and serve HTTP on a loopback port."""
        stack = contextlib.AsyncExitStack()
        try:
            await stack.enter_async_context(self._engine())
            self._base_url = await stack.enter_async_context(
                serve(self.app, host=self._host, port=self._port)
            )
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        self._base_url = None
        # Requests held in service (`hold_requests`) are answered: the server's shutdown waits
        # for the requests in flight, and nobody would release these any more.
        self.release_requests()
        if stack is not None:
            await stack.aclose()

    async def serve_forever(self, on_listening: Callable[[str], None] | None = None) -> None:
        """Serve until SIGINT/SIGTERM (the command line); uvicorn handles the signals."""
        sock = bind_tcp_socket(self._host, self._port)
        self._base_url = f"http://{self._host}:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, lifespan="off", access_log=False, log_level="warning")
        try:
            async with self._engine():
                if on_listening is not None:
                    on_listening(self.url)
                await uvicorn.Server(config).serve(sockets=[sock])
        finally:
            sock.close()
            self._base_url = None

    @contextlib.asynccontextmanager
    async def _engine(self) -> AsyncIterator[None]:
        """What runs besides HTTP: the webhook sender and the task that finishes jobs."""
        self._sender = WebhookSender(self.config, self.state.counters, self.rng)
        finisher = asyncio.get_running_loop().create_task(self._finish_jobs())
        try:
            yield
        finally:
            sender, self._sender = self._sender, None
            finisher.cancel()
            try:
                # asyncio.wait, not `await finisher` in suppress(CancelledError): that would
                # also swallow a cancellation of whoever is closing the simulator.
                await asyncio.wait([finisher])
                if not finisher.cancelled() and (error := finisher.exception()) is not None:
                    raise error
            finally:
                # Even if the finisher failed or we are cancelled: no delivery outlives us.
                await sender.aclose()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (no path)."""
        if self._base_url is None:
            raise RuntimeError("the simulator is not running; use `async with`")
        return self._base_url

    @property
    def url(self) -> str:
        """The API endpoint, as `RUNWARE_API_URL` expects it: `http://127.0.0.1:PORT/v1`."""
        return f"{self.base_url}/v1"

    def _video_origin(self) -> str | None:
        """The origin new jobs' video URLs name: ours when serving videos there, else Runware's."""
        if self.config.videos.on_own_origin and self._base_url is not None:
            return self._base_url
        return None

    # --- Reading ----------------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.state.counters

    def now(self) -> float:
        return time.monotonic()

    def job(self, task_uuid: str) -> Job | None:
        return self.state.jobs.get(task_uuid)

    def jobs(self) -> list[Job]:
        return list(self.state.jobs.values())

    def truth(self) -> dict[str, str]:
        """Each job as its clip should end up: `"pending"`, the first video URL, or `"failed"`."""
        return self.state.truth(self.now())

    # --- Test controls (no HTTP) ------------------------------------------------------------------

    def add_job(
        self,
        task_uuid: str,
        *,
        duration: float | None = None,
        outcome: Outcome | None = None,
        webhook_url: str | None = None,
        number_results: int = 1,
        error_code: str | None = None,
        error_message: str | None = None,
        error_shape: ErrorShape | None = None,
    ) -> Job:
        """Create a job as if it had been submitted; `None` fields take the config's defaults."""
        job = self.state.create_job(
            task_uuid,
            self.now(),
            self.config.jobs,
            seconds=duration,
            outcome=outcome,
            webhook_url=webhook_url,
            number_results=number_results,
            error_code=error_code,
            error_message=error_message,
            error_shape=error_shape,
            video_origin=self._video_origin(),
        )
        if job is None:
            raise ValueError(f"job {task_uuid} already exists")
        self._wake.set()
        return job

    def complete_now(self, task_uuid: str) -> Job:
        """Finish a job at once; its webhook (if any) goes out right away."""
        job = self.state.jobs[task_uuid]
        job.finish_at = min(job.finish_at, self.now())
        self._wake.set()
        return job

    def forget_job(self, task_uuid: str) -> None:
        """Drop a job, as when Runware's retention expires: it then answers `taskNotFound`."""
        self.state.jobs.pop(task_uuid, None)

    def hold_requests(self) -> None:
        """Keep every request that arrives from now on in service until `release_requests`.

        Makes overlap deterministic in tests: hold, send two polls, wait until both are in
        flight (`state.requests_in_flight`), release.
        """
        self.serving_gate.clear()

    def release_requests(self) -> None:
        self.serving_gate.set()

    def reset_counters(self) -> None:
        self.state.counters.reset()
        self.state.counters.max_requests_in_flight = self.state.requests_in_flight

    async def webhooks_settled(self) -> None:
        """Wait until every due webhook has been delivered, dropped or given up."""
        while self._sender is not None:
            self._deliver_due()
            if not self._sender.busy:
                return
            await self._sender.settled()

    # --- Used by the HTTP server ------------------------------------------------------------------

    async def submit_task(self, task: Json) -> tuple[list[Json], list[Json]]:
        """A `videoInference` task: create the job and acknowledge, or explain the refusal."""
        task_uuid = task.get("taskUUID")
        if not isinstance(task_uuid, str) or not task_uuid:
            return [], [_task_error(None, "missingTaskUUID", "taskUUID is required.")]
        if task.get("deliveryMethod", "async") != "async":
            return [], [
                _task_error(
                    task_uuid,
                    "unsupportedDeliveryMethod",
                    "The simulator only runs video jobs with deliveryMethod async.",
                    parameter="deliveryMethod",
                )
            ]
        webhook_url = task.get("webhookURL")
        if webhook_url is not None and not (
            isinstance(webhook_url, str) and webhook_url.startswith(("http://", "https://"))
        ):
            return [], [
                _task_error(
                    task_uuid,
                    "invalidWebhookURL",
                    "webhookURL must be an http(s) URL.",
                    parameter="webhookURL",
                )
            ]
        number_results = task.get("numberResults", 1)
        if not isinstance(number_results, int) or not 1 <= number_results <= _MAX_NUMBER_RESULTS:
            return [], [
                _task_error(
                    task_uuid,
                    "invalidNumberResults",
                    f"numberResults must be an integer from 1 to {_MAX_NUMBER_RESULTS}.",
                    parameter="numberResults",
                )
            ]
        early = webhook_url is not None and self.rng.random() < self.config.webhooks.early
        model = task.get("model")
        job = self.state.create_job(
            task_uuid,
            self.now(),
            self.config.jobs,
            seconds=0.0 if early else None,
            webhook_url=webhook_url,
            number_results=number_results,
            model=model if isinstance(model, str) else None,
            outcome="error" if model == FAILING_MODEL else None,
            video_origin=self._video_origin(),
        )
        if job is None:
            self.counters.submit_conflicts += 1
            return [], [
                _task_error(
                    task_uuid,
                    "conflictTaskUUID",
                    "A task with this taskUUID already exists.",
                    parameter="taskUUID",
                )
            ]
        self.counters.submits += 1
        if early and self._sender is not None:
            job.webhooks_dispatched = True
            await self._sender.deliver_early(job)
        else:
            self._wake.set()
        return [{"taskType": "videoInference", "taskUUID": task_uuid}], []

    # --- Finishing jobs on time -------------------------------------------------------------------

    def _deliver_due(self) -> None:
        if self._sender is None:
            return
        for job in self.state.webhooks_due(self.now()):
            job.webhooks_dispatched = True
            self._sender.deliver(job)

    async def _finish_jobs(self) -> None:
        """Hand each job with a webhook to the sender when it finishes.

        Sleeps until the earliest unfinished job's finish time, or until woken by a new job or
        `complete_now`. Polling answers need no loop: they compare the clock on every request.
        """
        while True:
            # Clear before looking, so a wake-up arriving while we look is not lost.
            self._wake.clear()
            self._deliver_due()
            next_at = self.state.next_webhook_at()
            timeout = None if next_at is None else max(0.0, next_at - self.now())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)


def _task_error(
    task_uuid: str | None, code: str, message: str, *, parameter: str | None = None
) -> Json:
    error: dict[str, Any] = {"taskType": "videoInference", "code": code, "message": message}
    if task_uuid is not None:
        error["taskUUID"] = task_uuid
    if parameter is not None:
        error["parameter"] = parameter
    return error
