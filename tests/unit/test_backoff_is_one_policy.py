"""The shared backoff: grows by `factor` from `base`, stays within its ceiling, stops at the cap,
and draws the same delays from the same seed."""

from __future__ import annotations

import random

import pytest

from reconciler.backoff import Backoff, Jitter
from reconciler.ratelimit import Bucket, KeyedRateLimiter
from tests.fake_clock import FakeClock


def test_ceiling_grows_by_the_factor_from_the_base_up_to_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    assert [backoff.ceiling(n) for n in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert Backoff(base=1.0, cap=100.0, factor=3.0).ceiling(3) == 27.0
    # A loop that has failed for ever is at the cap, not an OverflowError.
    assert backoff.ceiling(100_000) == 10.0
    assert Backoff(base=1.0, cap=10.0, factor=3.0).ceiling(100_000) == 10.0


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 50])
def test_equal_jitter_stays_between_half_and_the_ceiling(attempt: int) -> None:
    backoff = Backoff(base=2.0, cap=60.0, jitter="equal")
    rng = random.Random(attempt)
    ceiling = backoff.ceiling(attempt)
    delays = [backoff.delay(attempt, rng) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize("attempt", [0, 1, 2, 3, 4, 50])
def test_full_jitter_stays_between_zero_and_the_ceiling(attempt: int) -> None:
    backoff = Backoff(base=2.0, cap=60.0, jitter="full")
    rng = random.Random(attempt)
    ceiling = backoff.ceiling(attempt)
    delays = [backoff.delay(attempt, rng) for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    # Full jitter reaches below the equal-jitter floor.
    assert min(delays) < ceiling / 2


def test_the_same_seed_gives_the_same_delays() -> None:
    backoff = Backoff(base=0.25, cap=8.0)
    first = [backoff.delay(n, random.Random(42)) for n in range(10)]
    second = [backoff.delay(n, random.Random(42)) for n in range(10)]
    assert first == second


def test_each_delay_draws_once_whatever_the_scheme() -> None:
    # The simulator's seeded fault draws must not shift with the jitter scheme.
    schemes: tuple[Jitter, ...] = ("equal", "full")
    for jitter in schemes:
        rng, twin = random.Random(7), random.Random(7)
        Backoff(base=1.0, cap=5.0, jitter=jitter).delay(3, rng)
        twin.random()
        assert rng.random() == twin.random()


def test_nonsense_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        Backoff(base=-1.0, cap=1.0)
    with pytest.raises(ValueError, match="must be"):
        Backoff(base=1.0, cap=1.0, factor=0.5)


def test_bucket_refills_at_the_rate_up_to_the_burst() -> None:
    bucket = Bucket.full(rate=2.0, burst=3.0, now=0.0)
    assert [bucket.try_take(0.0) for _ in range(3)] == [None, None, None]
    assert bucket.try_take(0.0) == 0.5  # one token comes back every half second
    assert bucket.try_take(0.5) is None
    bucket.refill(100.0)
    assert bucket.tokens == 3.0  # never above the burst


def test_keyed_limiter_keeps_one_bucket_per_key() -> None:
    clock = FakeClock()
    limiter = KeyedRateLimiter(per_minute=60, burst=1, clock=clock)
    assert limiter.try_acquire("a") is None
    assert limiter.try_acquire("b") is None
    assert limiter.try_acquire("a") == 1.0
    clock.advance(1.0)
    assert limiter.try_acquire("a") is None
