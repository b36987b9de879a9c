"""Cross-site request forgery guard for the admin page's one form ("check now").

Two independent checks, both required:

- A signed double-submit token. The browser holds a random nonce in a SameSite=Strict,
  HttpOnly cookie scoped to `/admin`; each form carries `<form nonce>.<HMAC(secret, cookie
  nonce | form nonce)>`. Another site can neither read our cookie nor compute the MAC (the
  secret is derived from the admin token), so it cannot build a matching pair — not even by
  planting a cookie of its own (cookie tossing from a sibling subdomain).
- The request comes from our own origin: `Sec-Fetch-Site: same-origin`, or an `Origin` (or,
  failing that, `Referer`) naming this host. Our pages send `Referrer-Policy: no-referrer`,
  under which browsers send `Origin: null` on form posts; `Sec-Fetch-Site` (sent by every
  current browser) is then the evidence. A foreign `Origin` is refused whatever else says.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME = "reconciler_admin_csrf"
FIELD_NAME = "csrf_token"
COOKIE_PATH = "/admin"
_NONCE_BYTES = 24
_NONCE = re.compile(r"[A-Za-z0-9_-]{32}")  # token_urlsafe(24): 32 characters


class CsrfRejected(Exception):
    """A post that may not come from our own page; the message says why (shown to the user)."""


def derive_secret(admin_passwords: Iterable[str]) -> bytes:
    """The MAC key: derived from the admin passwords, so every replica agrees on it without
    another setting, and rotating the admin token invalidates forms rendered before."""
    material = b"\0".join(password.encode() for password in admin_passwords)
    return hmac.new(b"reconciler admin csrf v1", material, hashlib.sha256).digest()


def _mac(secret: bytes, cookie_nonce: str, form_nonce: str) -> str:
    message = f"{cookie_nonce}|{form_nonce}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class CsrfGuard:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def cookie_nonce(self, request: Request) -> tuple[str, bool]:
        """The browser's cookie nonce, and whether it is new (then it must be set)."""
        current = request.cookies.get(COOKIE_NAME, "")
        if _NONCE.fullmatch(current):
            return current, False
        return secrets.token_urlsafe(_NONCE_BYTES), True

    def form_token(self, cookie_nonce: str) -> str:
        form_nonce = secrets.token_urlsafe(_NONCE_BYTES)
        return f"{form_nonce}.{_mac(self._secret, cookie_nonce, form_nonce)}"

    @staticmethod
    def set_cookie(response: Response, request: Request, cookie_nonce: str) -> None:
        response.set_cookie(
            COOKIE_NAME,
            cookie_nonce,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    def verify(self, request: Request, submitted: object) -> None:
        """Raises CsrfRejected unless the post carries a valid token and comes from our origin."""
        _require_same_origin(request)
        cookie_nonce = request.cookies.get(COOKIE_NAME, "")
        if not _NONCE.fullmatch(cookie_nonce):
            raise CsrfRejected(
                "the form's cookie is missing: reload the page (cookies must be enabled)"
            )
        if not isinstance(submitted, str) or not submitted:
            raise CsrfRejected("the form's security token is missing: reload the page")
        form_nonce, _, mac = submitted.partition(".")
        expected = _mac(self._secret, cookie_nonce, form_nonce)
        if not _NONCE.fullmatch(form_nonce) or not hmac.compare_digest(
            mac.encode(), expected.encode()
        ):
            raise CsrfRejected("the form's security token is not valid: reload the page")


def _host_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts.netloc.lower() if parts.scheme in ("http", "https") and parts.netloc else None


def _require_same_origin(request: Request) -> None:
    own_host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None and origin != "null" and _host_of(origin) != own_host:
        raise CsrfRejected("the request comes from another site")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise CsrfRejected("the request comes from another site")
    if fetch_site == "same-origin" or (origin is not None and origin != "null"):
        return  # a same-origin `Origin` passed the first test
    referer = request.headers.get("referer")
    if referer is not None and _host_of(referer) == own_host:
        return
    raise CsrfRejected("the request does not say where it comes from")
