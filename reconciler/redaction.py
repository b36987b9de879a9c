"""Keeping secrets out of everything the service prints. Pure functions, no I/O."""

from __future__ import annotations

import re

# scheme://user:password@host — the password is whatever lies between the first ':' after the
# scheme's '//' and the last '@' before the path (passwords may contain '@' unescaped in
# malformed URLs, which is exactly when they get echoed in an error).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)(?P<secret>[^\s]*)@")


def mask_url_password(text: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`, for any URL in
    `text`; text without a password is returned unchanged."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}***@", text)
