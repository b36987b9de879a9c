"""Backoff with jitter up to a cap, the give-up age, and the token bucket (no real waiting)."""

from __future__ import annotations

import random

from reconciler.ratelimit import TokenBucket
from reconciler.schedule import PollPolicy
from tests.fake_clock import FakeClock


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = PollPolicy(backoff_base_seconds=2, backoff_cap_seconds=60)
    rng = random.Random(5)
    for attempts, ceiling in [(0, 2), (1, 4), (2, 8), (3, 16), (5, 60), (40, 60)]:
        delays = {policy.next_check_in(attempts, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


def test_progress_brings_the_next_check_forward_but_never_past_the_backoff() -> None:
    policy = PollPolicy(backoff_base_seconds=2, backoff_cap_seconds=300)
    rng = random.Random(3)
    late = 20  # attempts: the backoff alone would be 150-300 s

    at_80 = policy.next_check_in(late, rng, age_seconds=40, progress=80)  # ~10 s left
    nearly_done = policy.next_check_in(late, rng, age_seconds=100, progress=99)
    unknown = policy.next_check_in(late, rng, age_seconds=40, progress=None)
    early = policy.next_check_in(0, rng, age_seconds=10, progress=10)  # 90 s left, backoff 1-2 s

    assert 10 <= at_80 <= 12
    assert nearly_done == 2  # never sooner than the base
    assert 150 <= unknown <= 300
    assert 1 <= early <= 2
    for bad in (0, 100, -5, 250):
        assert policy.next_check_in(late, rng, age_seconds=40, progress=bad) >= 150


def test_give_up_age_and_reason() -> None:
    policy = PollPolicy(give_up_after_seconds=100)
    assert not policy.gives_up(99.9)
    assert policy.gives_up(100)
    assert "gave up after 120 s" in policy.give_up_reason(120, "timeoutProvider")
    assert "timeoutProvider" in policy.give_up_reason(120, "timeoutProvider")


async def test_token_bucket_spaces_requests_at_the_rate() -> None:
    clock = FakeClock(advance_on_sleep=True)
    started = clock.now()
    bucket = TokenBucket(rate=4, burst=2, clock=clock, sleep=clock.sleep)

    for _ in range(10):
        await bucket.acquire()

    # 2 from the burst, then 8 more at 4 per second: 2 seconds of (fake) waiting.
    assert abs(clock.now() - started - 2.0) < 1e-9
    assert all(abs(s - 0.25) < 1e-9 for s in clock.slept)
