"""When to poll a pending job next, and when to give up on it. Pure functions."""

from __future__ import annotations

import random
from dataclasses import dataclass

from reconciler.backoff import Backoff


@dataclass(frozen=True)
class PollPolicy:
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 300.0
    give_up_after_seconds: float = 3600.0

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base_seconds, self.backoff_cap_seconds, jitter="equal")

    def next_check_in(
        self,
        attempts: int,
        rng: random.Random,
        *,
        age_seconds: float = 0.0,
        progress: int | None = None,
    ) -> float:
        """The shared `Backoff` ("equal jitter": half fixed, half random, capped).

        `attempts` counts checks already made, so the first re-check waits about the base.
        When Runware reports progress, the job is checked again about when it should be done
        (its age * remaining / done, never sooner than the base) if that comes before the
        backoff: a video at 80% after 40 s is looked at again in ~10 s, not at the cap.
        """
        backoff = self.backoff.delay(attempts, rng)
        if progress is None or not 0 < progress < 100 or age_seconds <= 0:
            return backoff
        remaining = age_seconds * (100 - progress) / progress
        estimate = max(self.backoff_base_seconds, remaining * rng.uniform(1.0, 1.2))
        return min(backoff, estimate)

    def gives_up(self, age_seconds: float) -> bool:
        return age_seconds >= self.give_up_after_seconds

    def give_up_reason(self, age_seconds: float, last_error: str | None) -> str:
        reason = f"gave up after {age_seconds:.0f} s without a result"
        return f"{reason} (last: {last_error})" if last_error else reason
