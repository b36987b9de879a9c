"""Failed authentications, limited per client address, and every refusal logged.

A wrong admin or metrics token costs its sender one token of a bucket kept per client address
(`RECONCILER_AUTH_FAILURE_BURST` at once, `RECONCILER_AUTH_FAILURE_RATE_PER_MINUTE` after
that). With the bucket empty, that address is answered 429 with `Retry-After` before its
credentials are even looked at — the right token too, or guessing would go on at full speed
with only the hits answered. Requests that present no credentials at all are not charged: a
browser asks without them first, and they guess nothing.

The address is the one uvicorn reports: the peer's, or the `X-Forwarded-For` of a proxy
trusted by `FORWARDED_ALLOW_IPS` (README, "Behind a proxy"). Log lines name the address and
the path, never the credentials presented: a refused secret may be a real one mistyped, or
pasted into the wrong field.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from reconciler.ratelimit import KeyedRateLimiter

log = logging.getLogger(__name__)

UNKNOWN_ADDRESS = "unknown"


def client_address(request: Request) -> str:
    return request.client.host if request.client is not None else UNKNOWN_ADDRESS


class FailedAuthentications:
    def __init__(
        self, per_minute: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limiter = KeyedRateLimiter(per_minute, burst, clock=clock)

    def too_many(self, request: Request, what: str) -> Response | None:
        """The 429 for an address that has failed too often lately; None when it may try."""
        wait = self._limiter.wait_for(client_address(request))
        if wait is None:
            return None
        retry_after = max(1, math.ceil(wait))
        # Info, not warning: these are as many as the sender makes, while the wrong tokens
        # that led here (warnings) are bounded by the limit.
        log.info(
            "%s refused: too many failed authentications from %s (%s %s), retry in %d s",
            what,
            client_address(request),
            request.method,
            request.url.path,
            retry_after,
        )
        return Response(
            "Too many failed authentications, try again later\n",
            status_code=429,
            media_type="text/plain",
            headers={"Retry-After": str(retry_after)},
        )

    def failed(self, request: Request, what: str) -> None:
        """Count and log a refused attempt (no credentials presented: logged, not counted)."""
        address = client_address(request)
        if "authorization" not in request.headers:
            log.info(
                "%s refused: no credentials from %s (%s %s)",
                what,
                address,
                request.method,
                request.url.path,
            )
            return
        self._limiter.try_acquire(address)
        log.warning(
            "%s refused: wrong credentials from %s (%s %s)",
            what,
            address,
            request.method,
            request.url.path,
        )
