"""What the service reports as it works, for metrics: a small interface with a no-op default.

The engine, the webhook route and the Runware client call these; only observability.metrics
turns them into Prometheus series. Values that already live in counters (`EngineStats`, the
feeds' counters, the queue) are read at scrape time instead and do not pass through here.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.ports import WebhookOutcome


class Observer(Protocol):
    def runware_request(self, status_code: int | None) -> None:
        """One HTTP request to Runware ended: its status, or None for a network error."""
        ...

    def reconcile_finished(self, seconds: float) -> None: ...

    def poll_round_finished(self, seconds: float) -> None: ...

    def webhook(self, outcome: WebhookOutcome, count: int = 1) -> None: ...


class NullObserver:
    """For commands and tests that keep no metrics."""

    def runware_request(self, status_code: int | None) -> None:
        pass

    def reconcile_finished(self, seconds: float) -> None:
        pass

    def poll_round_finished(self, seconds: float) -> None:
        pass

    def webhook(self, outcome: WebhookOutcome, count: int = 1) -> None:
        pass
