"""An address limited for failed authentications gets another try once its bucket refills,
and the 429's `Retry-After` says when; each address has its own bucket."""

from __future__ import annotations

from starlette.requests import Request

from reconciler.http.auth_failures import FailedAuthentications
from tests.fake_clock import FakeClock

PER_MINUTE = 6.0  # one try back every 10 s
BURST = 2


def _request(address: str, *, credentials: bool = True) -> Request:
    headers = [(b"authorization", b"Basic d3Jvbmc=")] if credentials else []
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/admin",
            "query_string": b"",
            "headers": headers,
            "client": (address, 40000),
            "server": ("127.0.0.1", 8000),
            "scheme": "http",
        }
    )


def test_a_limited_address_may_try_again_once_the_bucket_refills() -> None:
    clock = FakeClock()
    failures = FailedAuthentications(PER_MINUTE, BURST, clock=clock)
    attacker = _request("203.0.113.7")
    for _ in range(BURST):
        assert failures.too_many(attacker, "admin") is None
        failures.failed(attacker, "admin")

    refused = failures.too_many(attacker, "admin")
    assert refused is not None
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "10"
    assert failures.too_many(_request("203.0.113.8"), "admin") is None

    clock.advance(9.5)
    assert failures.too_many(attacker, "admin") is not None
    clock.advance(0.5)
    assert failures.too_many(attacker, "admin") is None


def test_requests_without_credentials_cost_nothing() -> None:
    failures = FailedAuthentications(PER_MINUTE, BURST, clock=FakeClock())
    browser = _request("203.0.113.9", credentials=False)
    for _ in range(BURST * 5):
        failures.failed(browser, "admin")
    assert failures.too_many(browser, "admin") is None
