"""Each check costs Runware requests: callers are rate-limited one by one, with Retry-After."""

from __future__ import annotations

import httpx
import jwt

from reconciler.local.simulator import RunwareSimulator
from reconciler.ratelimit import KeyedRateLimiter
from tests.fake_clock import FakeClock
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.standins.postgrest import JWT_SECRET

# Only the issuer is read from it here (the Postgres transport serves the check).
SUPABASE_URL = "http://127.0.0.1:9"
USER_ID = "9b3c1d7e-0000-4000-8000-000000000001"


BODY = {"project_id": "00000000-0000-0000-0000-000000000001"}


async def _checks(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[int]:
    """The status codes of `n` checks in a row by one caller."""
    return [
        (await client.post("/check-clips-status", json=BODY, headers=headers)).status_code
        for _ in range(n)
    ]


def _user_headers() -> dict[str, str]:
    claims = {
        "sub": USER_ID,
        "aud": "authenticated",
        "iss": f"{SUPABASE_URL}/auth/v1",
        "role": "authenticated",
        "exp": 4102444800,
    }
    return {"Authorization": f"Bearer {jwt.encode(claims, JWT_SECRET, algorithm='HS256')}"}


async def test_users_get_429_with_retry_after_once_the_burst_is_spent(
    service_env: dict[str, str], run_service: ServiceFactory, simulator: RunwareSimulator
) -> None:
    env = service_env | {
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RECONCILER_CHECK_RATE_PER_MINUTE": "6",
        "RECONCILER_CHECK_RATE_BURST": "2",
    }
    async with run_service(env) as url, httpx.AsyncClient(base_url=url) as client:
        answers = [
            await client.post("/check-clips-status", json=BODY, headers=_user_headers())
            for _ in range(3)
        ]
        stranger = await client.post(
            "/check-clips-status", json=BODY, headers={"Authorization": "Bearer nope"}
        )

    assert [a.status_code for a in answers] == [404, 404, 429]
    assert answers[2].json() == {"success": False, "error": "Too many checks, slow down"}
    assert int(answers[2].headers["retry-after"]) >= 1
    assert stranger.status_code == 401  # refused callers do not spend anyone's budget


async def test_full_access_callers_are_not_rate_limited_by_default(
    service_env: dict[str, str], run_service: ServiceFactory, simulator: RunwareSimulator
) -> None:
    # A backend checking many projects must not be throttled by the per-user limit.
    env = service_env | {
        "RECONCILER_CHECK_RATE_PER_MINUTE": "6",
        "RECONCILER_CHECK_RATE_BURST": "2",
    }
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url) as client:
        answers = await _checks(client, headers, 30)

    assert set(answers) == {404}


async def test_full_access_callers_have_a_separate_optional_limit(
    service_env: dict[str, str], run_service: ServiceFactory, simulator: RunwareSimulator
) -> None:
    env = service_env | {
        "SUPABASE_URL": SUPABASE_URL,
        "SUPABASE_JWT_SECRET": JWT_SECRET,
        "RECONCILER_CHECK_RATE_PER_MINUTE": "6",
        "RECONCILER_CHECK_RATE_BURST": "1",
        "RECONCILER_SERVICE_CHECK_RATE_PER_MINUTE": "6",
        "RECONCILER_SERVICE_CHECK_RATE_BURST": "3",
    }
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with run_service(env) as url, httpx.AsyncClient(base_url=url) as client:
        service_answers = await _checks(client, headers, 4)
        # The service's bucket is its own: a user still has their full burst.
        user = await client.post("/check-clips-status", json=BODY, headers=_user_headers())

    assert service_answers == [404, 404, 404, 429]
    assert user.status_code == 404


def test_buckets_are_per_caller_and_refill() -> None:
    clock = FakeClock()
    limiter = KeyedRateLimiter(per_minute=60, burst=1, clock=clock)

    assert limiter.try_acquire("alice") is None
    wait = limiter.try_acquire("alice")
    assert wait is not None
    assert abs(wait - 1.0) < 1e-9
    assert limiter.try_acquire("bob") is None  # another caller has its own bucket
    clock.advance(1.0)
    assert limiter.try_acquire("alice") is None
