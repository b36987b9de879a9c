"""Each check costs Runware requests: callers are rate-limited one by one, with Retry-After."""

from __future__ import annotations

import httpx

from reconciler.http.rate_limit import KeyedRateLimiter
from reconciler.simulator import RunwareSimulator
from tests.conftest import ADMIN_TOKEN, ServiceFactory


async def test_429_with_retry_after_once_the_burst_is_spent(
    service_env: dict[str, str], run_service: ServiceFactory, simulator: RunwareSimulator
) -> None:
    env = service_env | {
        "RECONCILER_CHECK_RATE_PER_MINUTE": "6",
        "RECONCILER_CHECK_RATE_BURST": "2",
    }
    body = {"project_id": "00000000-0000-0000-0000-000000000001"}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url) as client:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        answers = [
            await client.post("/check-clips-status", json=body, headers=headers) for _ in range(3)
        ]
        stranger = await client.post(
            "/check-clips-status", json=body, headers={"Authorization": "Bearer nope"}
        )

    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[2].json() == {"success": False, "error": "Too many checks, slow down"}
    assert int(answers[2].headers["retry-after"]) >= 1
    assert stranger.status_code == 401  # refused callers do not spend anyone's budget


def test_buckets_are_per_caller_and_refill() -> None:
    now = [0.0]
    limiter = KeyedRateLimiter(per_minute=60, burst=1, clock=lambda: now[0])

    assert limiter.try_acquire("alice") is None
    wait = limiter.try_acquire("alice")
    assert wait is not None
    assert abs(wait - 1.0) < 1e-9
    assert limiter.try_acquire("bob") is None  # another caller has its own bucket
    now[0] += 1.0
    assert limiter.try_acquire("alice") is None
