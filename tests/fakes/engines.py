"""An `Engine` on the in-memory store, a scripted Runware and a fake clock: the engine's logic
without PostgreSQL, a network or waiting."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace

from reconciler.checker import CheckPolicy, ClipChecker
from reconciler.engine import Engine, EnginePolicy
from reconciler.schedule import PollPolicy
from tests.fake_clock import FakeClock
from tests.fakes.memory_store import MemoryStore
from tests.fakes.runware import ScriptedRunware
from tests.store_conformance import MemoryHarness

# Numbers easy to reason about in a test: checked first after 30 s, then after about 5, 10,
# 20 … s (at most 300), given up after an hour, leases of a minute.
CHECK_POLICY = CheckPolicy(first_check_delay_seconds=30.0)
ENGINE_POLICY = EnginePolicy(
    workers=4,
    lease_seconds=60.0,
    sweep_on_start=False,
    sweep_interval_seconds=0,
    sweep_spread_seconds=0,
    resync_interval_seconds=0,
    resync_pause_seconds=0,
    poll=PollPolicy(backoff_base_seconds=5.0, backoff_cap_seconds=300.0),
)


@dataclass
class EngineWorld:
    """One store, one Runware, one clock; engines (replicas) made on demand share them."""

    clock: FakeClock = field(default_factory=FakeClock)
    runware: ScriptedRunware = field(default_factory=ScriptedRunware)
    policy: EnginePolicy = ENGINE_POLICY
    check_policy: CheckPolicy = CHECK_POLICY
    seed: int = 7
    store_type: type[MemoryStore] = MemoryStore
    store: MemoryStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.store_type(self.clock, rng=random.Random(self.seed))

    @property
    def inspect(self) -> MemoryHarness:
        """The store's state as the conformance suite reads it."""
        return MemoryHarness(self.store)

    def engine(self, owner: str = "replica-a", **policy_changes: object) -> Engine:
        policy = replace(self.policy, **policy_changes)  # type: ignore[arg-type]
        checker = ClipChecker(self.store, self.runware, self.check_policy)
        return Engine(
            self.store,
            checker,
            policy=policy,
            owner=owner,
            rng=random.Random(self.seed),
            clock=self.clock,
        )
