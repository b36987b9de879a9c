"""Supabase Auth's side for tests: an ES256 signing key, its JWKS, and user JWTs minted with
whatever claims a test needs (expired, wrong audience, wrong issuer, foreign signature)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass
class UserTokens:
    issuer: str
    kid: str = "test-key-1"
    _key: ec.EllipticCurvePrivateKey = field(default_factory=_new_key)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [public | {"kid": self.kid, "alg": "ES256", "use": "sig"}]}

    def mint(
        self,
        sub: str,
        *,
        expires_in: float = 3600,
        aud: str = "authenticated",
        iss: str | None = None,
        foreign_key: bool = False,
        kid: str | None = None,
        issued_in: float = 0,
        not_before_in: float | None = None,
    ) -> str:
        """`issued_in`, `not_before_in`: `iat`, `nbf` moved from now, as by a skewed clock."""
        now = int(time.time())
        claims = {
            "sub": sub,
            "aud": aud,
            "iss": iss or self.issuer,
            "role": "authenticated",
            "iat": int(now + issued_in),
            "exp": int(now + expires_in),
        }
        if not_before_in is not None:
            claims["nbf"] = int(now + not_before_in)
        key = _new_key() if foreign_key else self._key
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid or self.kid})
