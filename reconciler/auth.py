"""Who is calling the check endpoint: the service role (full access) or a Supabase user.

User JWTs are verified locally: ES256/RS256 against the project's JWKS
(`<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, cached), HS256 against `SUPABASE_JWT_SECRET`
when set; signature, `exp`, `aud = authenticated` and `iss = <SUPABASE_URL>/auth/v1` are all
checked. Whether the user may see a project is then asked of the database, as that user.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import jwt

# Re-exported: the identity values live in `callers`, so the ports need not import this module.
from reconciler.callers import Caller as Caller
from reconciler.callers import ServiceCaller as ServiceCaller
from reconciler.callers import UserCaller as UserCaller
from reconciler.config import DEFAULTS
from reconciler.tokens import matches_any

log = logging.getLogger(__name__)

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
_KEY_TYPES = {"ES256": "EC", "RS256": "RSA"}
JWKS_TTL_SECONDS = 600.0
# An unknown key id triggers a refetch (keys rotate), but not more often than this.
JWKS_MIN_REFETCH_SECONDS = DEFAULTS.jwks_min_refetch_seconds
# Clock skew tolerated on `exp`, `nbf` and `iat`: PostgREST allows 30 s too.
JWT_LEEWAY_SECONDS = DEFAULTS.jwt_leeway_seconds


class Unauthenticated(Exception):
    """Missing, malformed, expired or wrongly signed credentials (→ 401).

    `guess` says whether the credentials could be someone guessing: a token that is neither a
    trusted one nor a JWT whose signature verifies. Those are charged to the sender's address
    (reconciler/http/auth_failures.py); a genuine user's expired or not-yet-valid token, a
    missing one, or our own trouble reading the signing keys are not, or users sharing one
    address (an office, a mobile carrier) would spend each other's budget.
    """

    def __init__(self, message: str, *, guess: bool = False) -> None:
        super().__init__(message)
        self.guess = guess


class JwksUnreadable(ValueError):
    """A JWKS answer that is not a JSON object with a `keys` list."""


def parse_jwks(body: object) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS, by key id ("" for a key without one).

    Entries that are not ES256/RS256 public keys we can build are skipped: the others may still
    verify. Raises JwksUnreadable when the body is not a key set at all.
    """
    if not isinstance(body, dict) or not isinstance(body.get("keys"), list):
        raise JwksUnreadable("not a JSON object with a keys list")
    keys: dict[str, jwt.PyJWK] = {}
    for entry in body["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid", "")
        algorithm = entry.get("alg", _algorithm_of(entry.get("kty")))
        # Checked before PyJWK sees the entry: it would otherwise accept `oct` (HMAC) keys,
        # which a published key set must never contribute.
        if not isinstance(kid, str) or algorithm not in ASYMMETRIC_ALGORITHMS:
            continue
        # `d` marks a private key: it cannot verify (PyJWT would raise AttributeError) and
        # has no business in a published key set.
        if entry.get("kty") != _KEY_TYPES[algorithm] or "d" in entry:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue  # malformed key material
        keys[kid] = key
    return keys


def _algorithm_of(key_type: object) -> str | None:
    """The algorithm a JWK without `alg` is used with (as PyJWT infers it for P-256 and RSA)."""
    return next((alg for alg, kty in _KEY_TYPES.items() if kty == key_type), None)


class JwksCache:
    """The project's signing keys, fetched with httpx (never blocking the event loop).

    Fetches are single-flight and rate-limited: concurrent callers wait for one fetch, and an
    unknown key id (anyone can forge one) refetches at most once per `min_refetch_seconds`.
    A failed fetch counts as an attempt too, so a failing endpoint is not hammered; the keys
    already known are kept until a fetch succeeds.
    """

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS,
        ttl_seconds: float = JWKS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._min_refetch = min_refetch_seconds
        self._ttl = ttl_seconds
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._attempted_at: float | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if self._fetch_due(kid):
            async with self._lock:
                # Checked again: the fetch this caller waited for may already have answered.
                if self._fetch_due(kid):
                    await self._fetch()
        found = self._lookup(kid)
        if found is None:
            raise Unauthenticated("signing key not found")
        return found

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid or "")

    def _fetch_due(self, kid: str | None) -> bool:
        if self._attempted_at is None:
            return True
        now = self._clock()
        if now - self._attempted_at < self._min_refetch:
            return False
        stale = self._fetched_at is None or now - self._fetched_at >= self._ttl
        return stale or self._lookup(kid) is None

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self._url)
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, httpx.InvalidURL, ValueError, RecursionError) as error:
            # httpx's and the parser's messages name the URL and the problem, never a token.
            log.warning("could not fetch JWKS from %s: %s", self._url, error)
            self._attempted_at = self._clock()
            return  # keep the keys we had
        self._keys = keys
        self._attempted_at = self._fetched_at = self._clock()


class CallerVerifier:
    def __init__(
        self,
        *,
        trusted_tokens: Iterable[str],
        issuer: str | None,
        jwt_secret: str | None,
        jwks: JwksCache | None,
        leeway_seconds: float = JWT_LEEWAY_SECONDS,
    ) -> None:
        self._trusted = tuple(trusted_tokens)
        self._issuer = issuer
        self._jwt_secret = jwt_secret
        self._jwks = jwks
        self._leeway = leeway_seconds

    async def verify(self, token: str | None) -> Caller:
        if not token:
            raise Unauthenticated("no bearer token")
        if matches_any(token, self._trusted):
            return ServiceCaller()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"malformed token: {error}", guess=True) from None
        algorithm = header.get("alg")
        kid = header.get("kid")
        if algorithm == "HS256" and self._jwt_secret:
            key: str | jwt.PyJWK = self._jwt_secret
        elif algorithm in ASYMMETRIC_ALGORITHMS and self._jwks is not None:
            # PyJWT checks this already; the cache relies on it (it looks keys up by kid).
            if kid is not None and not isinstance(kid, str):
                raise Unauthenticated("malformed token: kid is not a string", guess=True)
            # The PyJWK itself, not its raw key: PyJWT then refuses a token whose algorithm
            # is not the key's (an RS256 header naming an EC key) instead of raising TypeError.
            key = await self._jwks.key(kid)
        else:
            raise Unauthenticated(
                f"unsupported token algorithm {str(algorithm)[:20]!r}", guess=True
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience="authenticated",
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "sub", "aud"], "verify_iss": self._issuer is not None},
            )
        except jwt.PyJWTError as error:
            # PyJWT verifies the signature before any claim: only a bad signature or a token
            # it cannot decode is a guess; an expired or wrong-audience token was signed by us.
            guess = isinstance(error, jwt.DecodeError)  # InvalidSignatureError is one
            raise Unauthenticated(f"invalid token: {error}", guess=guess) from None
        return UserCaller(token, claims)
