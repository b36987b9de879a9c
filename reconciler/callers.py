"""Who is calling: the caller identity values that cross the ports (no third-party imports).

`auth.CallerVerifier` makes them from a bearer token; the store asks the database as a
`UserCaller`; the checker decides what a caller may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceCaller:
    key: str = "service"


@dataclass(frozen=True)
class UserCaller:
    token: str
    claims: dict[str, Any]

    @property
    def key(self) -> str:
        return f"user:{self.claims['sub']}"


Caller = ServiceCaller | UserCaller
