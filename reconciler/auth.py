"""Who is calling the check endpoint: the service role (full access) or a Supabase user.

User JWTs are verified locally: ES256/RS256 against the project's JWKS
(`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, cached), HS256 against `SUPABASE_JWT_SECRET`
when set; signature, `exp`, `aud = authenticated` and `iss = <SUPABASE_URL>/auth/v1` are all
checked. Whether the user may see a project is then asked of the database, as that user.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from reconciler.tokens import matches_any

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
JWKS_TTL_SECONDS = 600.0
# An unknown key id triggers a refetch (keys rotate), but not more often than this.
JWKS_MIN_REFRESH_SECONDS = 30.0


class Unauthenticated(Exception):
    """Missing, malformed, expired or wrongly signed credentials (→ 401)."""


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


class JwksCache:
    """The project's signing keys, fetched with httpx (never blocking the event loop)."""

    def __init__(self, url: str, http: httpx.AsyncClient) -> None:
        self._url = url
        self._http = http
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -JWKS_TTL_SECONDS
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        now = time.monotonic()
        if now - self._fetched_at > JWKS_TTL_SECONDS or (
            kid not in self._keys and now - self._fetched_at > JWKS_MIN_REFRESH_SECONDS
        ):
            await self._refresh()
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        found = self._keys.get(kid or "")
        if found is None:
            raise Unauthenticated("signing key not found")
        return found

    async def _refresh(self) -> None:
        async with self._lock:
            try:
                response = await self._http.get(self._url)
                response.raise_for_status()
                keys: dict[str, jwt.PyJWK] = {}
                for entry in response.json().get("keys", []):
                    try:
                        keys[str(entry.get("kid", ""))] = jwt.PyJWK(entry)
                    except (jwt.PyJWTError, ValueError, TypeError):
                        continue  # a key type we cannot use; others may still verify
            except (httpx.HTTPError, ValueError, AttributeError) as error:
                log.warning("could not fetch JWKS from %s: %s", self._url, error)
                return  # keep the keys we had
            self._keys = keys
            self._fetched_at = time.monotonic()


class CallerVerifier:
    def __init__(
        self,
        *,
        trusted_tokens: Iterable[str],
        issuer: str | None,
        jwt_secret: str | None,
        jwks: JwksCache | None,
    ) -> None:
        self._trusted = tuple(trusted_tokens)
        self._issuer = issuer
        self._jwt_secret = jwt_secret
        self._jwks = jwks

    async def verify(self, token: str | None) -> Caller:
        if not token:
            raise Unauthenticated("no bearer token")
        if matches_any(token, self._trusted):
            return ServiceCaller()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"malformed token: {error}") from None
        algorithm = header.get("alg")
        if algorithm == "HS256" and self._jwt_secret:
            key: Any = self._jwt_secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            key = (await self._jwks.key(header.get("kid"))).key
        else:
            raise Unauthenticated(f"unsupported token algorithm {algorithm!r}")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience="authenticated",
                issuer=self._issuer,
                options={"require": ["exp", "sub", "aud"], "verify_iss": self._issuer is not None},
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"invalid token: {error}") from None
        return UserCaller(token, claims)


def token_fingerprint(token: str) -> str:
    """A short, non-reversible label for logs (never log the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]
