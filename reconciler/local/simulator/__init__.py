"""A Runware API simulator with fault injection, for the demo, tests, soak runs and benchmarks.

Speaks the parts of the Runware API the reconciler relies on (docs/runware-api.md): array bodies,
Bearer or legacy auth, async `videoInference` with webhooks, batched `getResponse`, both error
shapes, cumulative results. `python -m reconciler.local.simulator --help` runs it on its own.
"""

from reconciler.local.simulator.config import (
    FAILING_MODEL,
    ApiFaults,
    JobDefaults,
    SimulatorConfig,
    VideoFiles,
    WebhookFaults,
    WebhookRetry,
)
from reconciler.local.simulator.core import RunwareSimulator
from reconciler.local.simulator.receiver import Delivery, WebhookRecorder
from reconciler.local.simulator.state import Counters, Job

__all__ = [
    "FAILING_MODEL",
    "ApiFaults",
    "Counters",
    "Delivery",
    "Job",
    "JobDefaults",
    "RunwareSimulator",
    "SimulatorConfig",
    "VideoFiles",
    "WebhookFaults",
    "WebhookRecorder",
    "WebhookRetry",
]
