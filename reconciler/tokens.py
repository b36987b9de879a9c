"""Comparing presented secrets (bearer tokens, webhook tokens) with the configured ones."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


def matches_any(presented: str | None, secrets: Iterable[str]) -> bool:
    """Constant-time comparison against every secret (no early exit on the first match)."""
    if not presented:
        return False
    candidate = presented.encode()
    results = [hmac.compare_digest(candidate, secret.encode()) for secret in secrets]
    return any(results)
