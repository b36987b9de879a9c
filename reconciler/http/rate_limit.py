"""Per-caller rate limit for the check endpoint: every call costs Runware requests.

A token bucket per caller, decided at once (no waiting): allowed, or "retry after N seconds".
The implementation is the shared one in `reconciler.ratelimit`; this path stays because
services.py and the tests import it from here.
"""

from __future__ import annotations

from reconciler.ratelimit import MAX_TRACKED_CALLERS, KeyedRateLimiter

__all__ = ["MAX_TRACKED_CALLERS", "KeyedRateLimiter"]
