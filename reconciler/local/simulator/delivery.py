"""Delivering finished jobs to their `webhookURL`, with Runware's retries and injected faults.

One POST per finished item. Any 2xx is "received"; anything else (or a transport error) is
retried after 250 ms, doubling, capped at 8 s, with jitter, up to a number of attempts. Faults
(drop, duplicate, delay, reorder) are drawn per item from the simulator's seeded RNG.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from typing import Any

import httpx

from reconciler.local.simulator.config import SimulatorConfig
from reconciler.local.simulator.state import Counters, Job, Json, pick_shape

_HEADERS = {"User-Agent": "runware-simulator", "Content-Type": "application/json"}


class WebhookSender:
    def __init__(self, config: SimulatorConfig, counters: Counters, rng: random.Random) -> None:
        self._config = config
        self._counters = counters
        self._rng = rng
        self._client = httpx.AsyncClient(headers=_HEADERS)
        self._tasks: set[asyncio.Task[None]] = set()
        # Reordered items wait here until the next delivery goes out (or their hold expires).
        self._held: list[tuple[str, Json]] = []
        self._hold_timers: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """True while any delivery (including a held or delayed one) is still under way."""
        return bool(self._tasks) or bool(self._held)

    def deliver(self, job: Job) -> None:
        """Start delivering a finished job's items in the background."""
        if not job.webhook_url:
            return
        for body in job.webhook_bodies(pick_shape(self._config.webhooks.shape, self._rng)):
            self._spawn(self._deliver_item(job.task_uuid, job.webhook_url, body))

    async def deliver_early(self, job: Job) -> None:
        """Deliver before the submit is acknowledged: wait for each item's first attempt.

        Delay and reorder are skipped here, they would contradict "before the ack". Retries of
        a failed first attempt continue in the background.
        """
        if not job.webhook_url:
            return
        self._counters.webhook_early += 1
        first_attempts: list[asyncio.Event] = []
        for body in job.webhook_bodies(pick_shape(self._config.webhooks.shape, self._rng)):
            for _ in range(self._copies(job.task_uuid)):
                attempted = asyncio.Event()
                first_attempts.append(attempted)
                self._spawn(self._send(job.webhook_url, body, attempted))
        for attempted in first_attempts:
            await attempted.wait()

    async def settled(self) -> None:
        """Return once no delivery is under way (tests: "all webhooks have been tried").

        Held (reordered) items are sent at once: whoever waits expects nothing else to follow.
        """
        while self.busy:
            self._release_held()
            await asyncio.wait(set(self._tasks))

    async def aclose(self) -> None:
        """Stop every delivery and hold timer, then close the client (that too if we are
        cancelled meanwhile: the deliveries, cancelled already, end on their own)."""
        try:
            # Until none is left, in case one started while the others were ending.
            while tasks := {t for t in self._tasks | self._hold_timers if not t.done()}:
                for task in tasks:
                    task.cancel()
                await asyncio.wait(tasks)
                for task in tasks:
                    if not task.cancelled():
                        task.exception()  # retrieved: a delivery's failure ends with it
        finally:
            self._held.clear()
            await self._client.aclose()

    # --- One item -----------------------------------------------------------------------------

    def _copies(self, task_uuid: str) -> int:
        """1, or 0 when the item is dropped, or 2 when it is duplicated."""
        faults = self._config.webhooks
        if task_uuid in faults.drop_tasks or self._rng.random() < faults.drop:
            self._counters.webhook_dropped += 1
            self._counters.webhook_dropped_tasks.add(task_uuid)
            return 0
        if self._rng.random() < faults.duplicate:
            self._counters.webhook_duplicated += 1
            return 2
        return 1

    async def _deliver_item(self, task_uuid: str, url: str, body: Json) -> None:
        faults = self._config.webhooks
        copies = self._copies(task_uuid)
        if copies == 0:
            return
        if self._rng.random() < faults.delay:
            self._counters.webhook_delayed += 1
            await asyncio.sleep(faults.delay_seconds)
        if self._rng.random() < faults.reorder:
            self._counters.webhook_reordered += 1
            self._held.extend([(url, body)] * copies)
            timer = asyncio.get_running_loop().create_task(
                self._expire_hold(faults.reorder_hold_seconds)
            )
            self._hold_timers.add(timer)
            timer.add_done_callback(self._hold_timers.discard)
            return
        attempted = asyncio.Event()
        self._spawn(self._send(url, body, attempted))
        for _ in range(copies - 1):
            self._spawn(self._send(url, body, None))
        if self._held:
            # Held items go out once this one has been tried: that is the reordering.
            await attempted.wait()
            self._release_held()

    async def _expire_hold(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._release_held()

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for url, body in held:
            self._spawn(self._send(url, body, None))

    async def _send(self, url: str, body: Json, attempted: asyncio.Event | None) -> None:
        retry = self._config.webhook_retry
        for attempt in range(1, retry.max_attempts + 1):
            self._counters.webhook_attempts += 1
            try:
                response = await self._client.post(url, json=body, timeout=retry.timeout_seconds)
                delivered = response.is_success
            except (httpx.HTTPError, httpx.InvalidURL):
                delivered = False
            if attempted is not None:
                attempted.set()
            if delivered:
                self._counters.webhook_delivered += 1
                return
            self._counters.webhook_failed_attempts += 1
            if attempt < retry.max_attempts:
                # Equal jitter (half to the full delay), as a fleet of senders would show;
                # `attempt` counts from 1, the backoff from 0.
                await asyncio.sleep(retry.backoff.delay(attempt - 1, self._rng))
        self._counters.webhook_gave_up += 1

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
