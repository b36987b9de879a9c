"""The simulator's state: jobs, what Runware would answer about them, and counters.

Pure: no I/O, no asyncio. Time comes in as `now` (seconds on a monotonic clock) and randomness
from the `random.Random` handed in, so a seeded run is reproducible and this module is testable
without a server.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from reconciler.local.simulator.config import ErrorShape, JobDefaults, Outcome, WebhookShape

# Video URLs name Runware's host unless the simulator serves them on its own origin
# (`VideoFiles.on_own_origin`); the path is the same either way.
RUNWARE_VIDEO_ORIGIN = "https://vm.runware.ai"
VIDEO_PATH_PREFIX = "/video/os/sim/ws/2/vi/"
VIDEO_URL_TEMPLATE = RUNWARE_VIDEO_ORIGIN + VIDEO_PATH_PREFIX + "{video_uuid}.mp4"
COST_PER_VIDEO = 0.11

Json = dict[str, Any]


def random_uuid(rng: random.Random) -> str:
    """A UUIDv4 drawn from the seeded RNG (uuid.uuid4 would break reproducibility)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Job:
    task_uuid: str
    created_at: float
    finish_at: float
    outcome: Outcome
    webhook_url: str | None
    video_uuids: list[str]
    seeds: list[int]
    error_code: str
    error_message: str
    error_shape: Literal["errors", "data"]
    model: str | None = None
    video_origin: str = RUNWARE_VIDEO_ORIGIN
    # Set once the job's webhooks have been handed to the sender, so each finish is delivered
    # once by the simulator (duplicates come only from the `duplicate` fault).
    webhooks_dispatched: bool = False

    def finished(self, now: float) -> bool:
        return now >= self.finish_at

    def progress(self, now: float) -> int:
        span = self.finish_at - self.created_at
        if span <= 0:
            return 99
        return max(0, min(99, int(100 * (now - self.created_at) / span)))

    def video_urls(self) -> list[str]:
        return [f"{self.video_origin}{VIDEO_PATH_PREFIX}{v}.mp4" for v in self.video_uuids]

    # --- What Runware says about this job --------------------------------------------------

    def success_items(self) -> list[Json]:
        """One item per generated video; every poll returns all of them (cumulative)."""
        return [
            {
                "taskType": "videoInference",
                "taskUUID": self.task_uuid,
                "status": "success",
                "videoUUID": video_uuid,
                "videoURL": url,
                "cost": COST_PER_VIDEO,
                "seed": seed,
            }
            for video_uuid, url, seed in zip(
                self.video_uuids, self.video_urls(), self.seeds, strict=True
            )
        ]

    def error_entry(self) -> Json:
        """The documented failure form: an entry in `errors[]` naming the task."""
        return {
            "taskType": "videoInference",
            "taskUUID": self.task_uuid,
            "status": "error",
            "code": self.error_code,
            "message": self.error_message,
        }

    def poll_answer(self, now: float) -> tuple[list[Json], list[Json]]:
        """The (data, errors) a getResponse for this job contributes to an answer."""
        if not self.finished(now):
            processing = {
                "taskType": "videoInference",
                "taskUUID": self.task_uuid,
                "status": "processing",
                "progress": self.progress(now),
            }
            return [processing], []
        if self.outcome == "success":
            return self.success_items(), []
        if self.error_shape == "errors":
            return [], [self.error_entry()]
        # The second form, handled by both current SDKs: a data item with a nested error.
        nested = {
            "taskType": "videoInference",
            "taskUUID": self.task_uuid,
            "status": "error",
            "error": {"code": self.error_code, "message": self.error_message},
        }
        return [nested], []

    def webhook_bodies(self, shape: Literal["flat", "wrapped"]) -> list[Json]:
        """One POST body per finished item, flat or wrapped as sources disagree."""
        if self.outcome == "success":
            items = self.success_items()
            if shape == "flat":
                return items
            return [{"data": [item]} for item in items]
        if shape == "flat":
            return [self.error_entry()]
        return [{"errors": [self.error_entry()]}]

    def truth(self, now: float) -> str:
        """What the job's clip should end as, in `projects.clips` terms."""
        if not self.finished(now):
            return "pending"
        if self.outcome == "success":
            return self.video_urls()[0]
        return "failed"


@dataclass
class Counters:
    """What the simulator observed; tests and benchmarks read these, `reset()` zeroes them.

    Requests and polls are counted on arrival (after auth), including those then refused by
    an injected 429/503: that is the load a client put on Runware.
    """

    requests_total: int = 0
    requests_by_task_type: Counter[str] = field(default_factory=Counter)
    requests_unauthorised: int = 0
    requests_malformed: int = 0
    api_faults_injected: int = 0
    get_response_tasks: int = 0
    polls_by_task: Counter[str] = field(default_factory=Counter)
    # A getResponse for a task that arrived while another request asking for the same task was
    # still being served: the sign of two pollers (replicas) checking one job at once.
    overlapping_polls: int = 0
    max_requests_in_flight: int = 0
    submits: int = 0
    submit_conflicts: int = 0
    webhook_attempts: int = 0
    webhook_delivered: int = 0
    webhook_failed_attempts: int = 0
    webhook_gave_up: int = 0
    webhook_dropped: int = 0
    webhook_duplicated: int = 0
    webhook_delayed: int = 0
    webhook_reordered: int = 0
    video_requests: int = 0
    video_bytes_sent: int = 0
    video_faults_injected: int = 0
    webhook_early: int = 0
    # Which tasks lost a webhook item to the `drop` fault (the demo and the soak report them).
    webhook_dropped_tasks: set[str] = field(default_factory=set)

    def reset(self) -> None:
        """Zero in place, so everything holding this object keeps seeing the live counters."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Counter | set):
                value.clear()
            else:
                setattr(self, f.name, 0)


class SimState:
    """Jobs by task UUID, the requests being served, and the counters."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.jobs: dict[str, Job] = {}
        self.counters = Counters()
        self.requests_in_flight = 0
        self._polls_in_service: Counter[str] = Counter()

    def create_job(
        self,
        task_uuid: str,
        now: float,
        defaults: JobDefaults,
        *,
        seconds: float | None = None,
        outcome: Outcome | None = None,
        webhook_url: str | None = None,
        number_results: int = 1,
        error_code: str | None = None,
        error_message: str | None = None,
        error_shape: ErrorShape | None = None,
        model: str | None = None,
        video_origin: str | None = None,
    ) -> Job | None:
        """Add a job; None when the UUID is already known (Runware: `conflictTaskUUID`)."""
        if task_uuid in self.jobs:
            return None
        if outcome is None:
            outcome = "error" if self.rng.random() < defaults.fail_rate else "success"
        wanted = error_shape or defaults.error_shape
        shape: Literal["errors", "data"] = (
            self.rng.choice(("errors", "data")) if wanted == "mixed" else wanted
        )
        count = max(1, number_results)
        job = Job(
            task_uuid=task_uuid,
            created_at=now,
            finish_at=now + (self._default_seconds(defaults) if seconds is None else seconds),
            outcome=outcome,
            webhook_url=webhook_url,
            video_uuids=[random_uuid(self.rng) for _ in range(count)],
            seeds=[self.rng.randrange(1, 2**31) for _ in range(count)],
            error_code=error_code or defaults.error_code,
            error_message=error_message or defaults.error_message,
            error_shape=shape,
            model=model,
            video_origin=video_origin or RUNWARE_VIDEO_ORIGIN,
        )
        self.jobs[task_uuid] = job
        return job

    def _default_seconds(self, defaults: JobDefaults) -> float:
        return defaults.seconds + self.rng.random() * defaults.seconds_jitter

    # --- Requests in service ----------------------------------------------------------------

    def begin_request(self) -> None:
        self.counters.requests_total += 1
        self.requests_in_flight += 1
        self.counters.max_requests_in_flight = max(
            self.counters.max_requests_in_flight, self.requests_in_flight
        )

    def end_request(self) -> None:
        self.requests_in_flight -= 1

    def begin_polls(self, task_uuids: list[str]) -> list[str]:
        """Count the asked tasks and mark them in service; returns what `end_polls` takes."""
        self.counters.get_response_tasks += len(task_uuids)
        self.counters.polls_by_task.update(task_uuids)
        distinct = list(dict.fromkeys(task_uuids))
        for task_uuid in distinct:
            if self._polls_in_service[task_uuid] > 0:
                self.counters.overlapping_polls += 1
            self._polls_in_service[task_uuid] += 1
        return distinct

    def end_polls(self, distinct: list[str]) -> None:
        self._polls_in_service.subtract(distinct)
        for task_uuid in distinct:
            if self._polls_in_service[task_uuid] <= 0:
                del self._polls_in_service[task_uuid]

    # --- Answers and schedule ---------------------------------------------------------------

    def poll_answer(self, task_uuid: str, now: float) -> tuple[list[Json], list[Json]]:
        job = self.jobs.get(task_uuid)
        if job is None:
            not_found = {
                "taskType": "getResponse",
                "taskUUID": task_uuid,
                "code": "taskNotFound",
                "message": f"No task found with taskUUID {task_uuid}.",
                "parameter": "taskUUID",
            }
            return [], [not_found]
        return job.poll_answer(now)

    def video_job(self, video_uuid: str) -> Job | None:
        """The job that generated `video_uuid` (a linear scan: only archive runs fetch videos)."""
        for job in self.jobs.values():
            if video_uuid in job.video_uuids:
                return job
        return None

    def webhooks_due(self, now: float) -> list[Job]:
        return [
            job
            for job in self.jobs.values()
            if job.webhook_url and not job.webhooks_dispatched and job.finished(now)
        ]

    def next_webhook_at(self) -> float | None:
        pending = [
            job.finish_at
            for job in self.jobs.values()
            if job.webhook_url and not job.webhooks_dispatched
        ]
        return min(pending, default=None)

    def truth(self, now: float) -> dict[str, str]:
        return {task_uuid: job.truth(now) for task_uuid, job in self.jobs.items()}


def pick_shape(shape: WebhookShape, rng: random.Random) -> Literal["flat", "wrapped"]:
    if shape == "mixed":
        return rng.choice(("flat", "wrapped"))
    return shape
