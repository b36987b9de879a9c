"""The simulator's knobs: how jobs end, how webhooks misbehave, how the API misbehaves.

Plain mutable dataclasses. The server and the webhook sender read them on every use, so a test
can change a fault in the middle of a run (`sim.api_faults.error_rate = 1.0`) and the next
request sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from reconciler.backoff import Backoff

# How a finished item is shaped where sources disagree (docs/runware-api.md, "Body shapes" and
# "Answers and error shapes"). "mixed" picks one per job or per delivery with the seeded RNG, so
# a long run exercises both.
WebhookShape: TypeAlias = Literal["flat", "wrapped", "mixed"]
ErrorShape: TypeAlias = Literal["errors", "data", "mixed"]
Outcome: TypeAlias = Literal["success", "error"]


# Submitting with this model makes the job fail: a deterministic failure through the real API
# (demo, end-to-end tests) without reaching into the simulator.
FAILING_MODEL = "simulator:fail"


@dataclass
class JobDefaults:
    """How jobs created through the API (not `add_job`) behave."""

    seconds: float = 5.0
    # Each job runs `seconds` plus a uniform extra in [0, seconds_jitter), so jobs submitted
    # together finish one after another, as real ones do.
    seconds_jitter: float = 0.0
    fail_rate: float = 0.0
    error_code: str = "timeoutProvider"
    error_message: str = "The provider did not answer in time."
    # How a failed job's result appears in getResponse answers.
    error_shape: ErrorShape = "errors"


@dataclass
class WebhookFaults:
    """Probabilities (0..1) of each delivery fault, drawn per finished item."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_seconds: float = 1.0
    # A reordered item is held back until the next delivery has been attempted (or until
    # `reorder_hold_seconds` passes, so a held item is never lost when nothing follows it).
    reorder: float = 0.0
    reorder_hold_seconds: float = 2.0
    # Drawn per submitted job: the job finishes at once and its webhook is delivered before the
    # submit request is answered, as when the app has not yet stored the job as pending.
    early: float = 0.0
    shape: WebhookShape = "mixed"
    # Tasks whose webhooks are always dropped, whatever `drop` draws (deterministic demos).
    drop_tasks: set[str] = field(default_factory=set)


@dataclass
class WebhookRetry:
    """Redelivery on non-2xx or transport error: 250 ms doubling, capped at 8 s, with jitter."""

    first_delay_seconds: float = 0.25
    cap_seconds: float = 8.0
    max_attempts: int = 8
    timeout_seconds: float = 5.0

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.first_delay_seconds, self.cap_seconds, jitter="equal")

    @classmethod
    def fast(cls) -> WebhookRetry:
        """Scaled down for tests: same shape, milliseconds instead of seconds."""
        return cls(first_delay_seconds=0.005, cap_seconds=0.05, max_attempts=6, timeout_seconds=5.0)


@dataclass
class ApiFaults:
    """Per-request latency and transient refusals (429/503 with Retry-After)."""

    latency_seconds: float = 0.0
    error_rate: float = 0.0
    error_statuses: tuple[int, ...] = (429, 503)
    retry_after_seconds: int = 1


@dataclass
class VideoFiles:
    """The generated videos the simulator serves at its video URLs (`GET /video/...`).

    Each is a small valid MP4 container padded to `size_bytes`, generated while it is sent (a
    500 MB video costs no memory). Off by default: URLs then name `vm.runware.ai`, as real
    ones do, and nothing fetches them.
    """

    # Answer URLs on the simulator's own origin (`http://127.0.0.1:PORT/video/...`), so that
    # `RECONCILER_ALLOWED_URL_HOSTS=http://127.0.0.1:PORT` allows them and they can be fetched.
    on_own_origin: bool = False
    size_bytes: int = 64 * 1024
    # 0 sends as fast as the connection takes it.
    bytes_per_second: float = 0.0
    # After this long past its finish a video answers 404, as Runware deletes outputs.
    retention_seconds: float | None = None
    # Drop the connection after this many body bytes (a cut download).
    cut_after_bytes: int | None = None
    # The next `fail_next` video requests are answered `fail_status`.
    fail_next: int = 0
    fail_status: int = 503
    content_type: str = "video/mp4"
    # Without Content-Length the body is sent chunked: the size is learnt only by reading.
    send_content_length: bool = True


@dataclass
class SimulatorConfig:
    api_key: str = "sim-api-key"
    seed: int | None = None
    jobs: JobDefaults = field(default_factory=JobDefaults)
    webhooks: WebhookFaults = field(default_factory=WebhookFaults)
    webhook_retry: WebhookRetry = field(default_factory=WebhookRetry)
    api: ApiFaults = field(default_factory=ApiFaults)
    videos: VideoFiles = field(default_factory=VideoFiles)
