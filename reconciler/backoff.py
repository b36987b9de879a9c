"""The one exponential backoff with jitter, shared by every retry loop. Pure: stdlib only.

Used by the poll schedule (`PollPolicy`), the realtime feed's rebuilds, the Runware client's
retries and the simulator's webhook redelivery, each with its own numbers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Jitter = Literal["equal", "full"]
"""How the random part of a delay is drawn, below the exponential `ceiling`.

- "equal": half the ceiling fixed, half uniform — `[ceiling / 2, ceiling]`. The default: a
  delay never drops near zero, so a loop that keeps failing never turns into a tight loop, and
  a fleet of waiters is still spread over half the window. Poll checks, realtime rebuilds and
  simulated webhook redelivery all used this (under three spellings).
- "full": uniform over `[0, ceiling]` (the AWS architecture blog's "full jitter"). Kept on
  purpose for the Runware client, whose retries go to a shared server and are few and bounded
  (`max_retries`): spreading callers as widely as possible matters more there than a floor.

Both draw exactly one `rng.random()` per delay, so a seeded rng gives the same sequence of
draws whichever scheme a caller uses (the simulator relies on this for reproducible runs).
"""


@dataclass(frozen=True)
class Backoff:
    """`base * factor ** attempt`, capped at `cap`, then jittered below that ceiling.

    `attempt` counts from 0: the first retry waits about `base`. Callers that count from 1
    (failures so far, attempt numbers) subtract one themselves, so the meaning stays single.
    """

    base: float
    cap: float
    factor: float = 2.0
    jitter: Jitter = "equal"

    def __post_init__(self) -> None:
        if self.base < 0 or self.cap < 0 or self.factor < 1:
            raise ValueError("base and cap must be >= 0 and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay `attempt` can draw: exponential growth, capped."""
        try:
            grown = self.base * self.factor ** max(attempt, 0)
        except OverflowError:
            # A loop that has failed thousands of times is simply at the cap.
            return self.cap
        return min(self.cap, grown)

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = self.ceiling(attempt)
        if self.jitter == "full":
            return rng.uniform(0.0, ceiling)
        return ceiling / 2 + rng.uniform(0.0, ceiling / 2)
