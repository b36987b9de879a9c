"""Keeping secrets out of everything the service prints. Pure functions, no I/O.

`Redactor` is what the log formatters run over every rendered message, exception text and
context value (observability/logs.py), and what the CLI runs over the errors it prints. It
masks, in one pass over the text:

- URL passwords: `postgresql://user:***@host/db`;
- values of sensitive names — `?apikey=…`, `&token=…`, `password='…'` (query strings, and the
  `key=value` renderings httpcore's traces and reprs use); the name is kept, the value masked;
- values of sensitive quoted keys, as dicts, JSON and header tuples render them:
  `'apikey': '…'`, `"access_token":"…"`, `(b'authorization', b'Bearer …')`;
- credential header lines as websockets prints them at debug level: `> Authorization: Bearer …`;
- JWT-shaped strings (base64url segments starting `eyJ`): service role keys and user tokens are
  JWTs, and some travel where no name announces them (realtime-py's join frames);
- every configured secret, verbatim, wherever it shows up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, unquote

MASK = "***"

# scheme://user:password@host — the password is whatever lies between the first ':' after the
# scheme's '//' and the last '@' before the path (passwords may contain '@' unescaped in
# malformed URLs, which is exactly when they get echoed in an error).
#
# Every masking pattern must stay linear on hostile text (job ids from webhook bodies reach log
# lines, up to the body cap): a pattern starts only where a word starts (the lookbehinds), and
# what it scans for a closing '@' is bounded, so no run of text is rescanned from each of its
# characters.
_URL_USERINFO_TEXT = (
    r"(?<![A-Za-z0-9+.-])(?P<url_head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]{0,256}:)"
    r"[^\s]{0,256}@"
)
_URL_PASSWORD = re.compile(_URL_USERINFO_TEXT)

# A name is sensitive when its last word is one of these: `apikey`, `access_token`,
# `client_secret`, `X-Api-Key`, `db_password`… Over-masking a harmless `foo_key=` costs less
# than a leaked credential.
_SENSITIVE_NAME = (
    r"(?:[A-Za-z0-9]+[_-])*"
    r"(?:api[_-]?key|key|token|secret|password|passwd|pwd|auth|authorization|signature|sig"
    r"|jwt|credentials?|cookie)"
)
# Headers whose whole value is a credential, printed as `name: value` lines (websockets' debug
# handshake). Deliberately not the generic name list: our own messages say "the API key: …".
_CREDENTIAL_HEADER = r"(?:proxy-)?authorization|apikey|x-api-key|api-key|cookie|set-cookie"
_AUTH_SCHEME = r"(?:bearer|basic|digest|token|negotiate)\s+"

# `name=value` / `name%3Dvalue`: the value runs to the next query-string or text delimiter, or
# is quoted as a repr renders it.
_NAME_VALUE = (
    # (The lookahead skips, in one scan, the many words that are followed by no '='.)
    rf"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_-]*(?:=|%3D))(?P<kv_head>{_SENSITIVE_NAME}(?:=|%3D))"
    r"(?:'[^']*'|\"[^\"]*\"|[^\s&#;,'\"<>\[\](){}]+)"
)
# `'name': 'value'`, `"name":"value"`, `(b'name', b'value')`: the value up to its closing quote.
_QUOTED_PAIR = (
    rf"(?P<pair_head>(?P<nq>['\"]){_SENSITIVE_NAME}(?P=nq)\s*[:,]\s*b?(?P<vq>['\"]))"
    r"(?:\\.|(?!(?P=vq))[^\\])+(?P=vq)"
)
_HEADER_LINE = (
    rf"(?<![A-Za-z0-9-])(?P<header_head>(?:{_CREDENTIAL_HEADER})\s*:\s*)"
    rf"(?:{_AUTH_SCHEME})?[^\s'\",]+"
)
# Header, then payload, then an optional signature (absent for alg=none, cut off in a
# truncated token).
_JWT = r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}(?:\.[A-Za-z0-9_-]*)?"

# Every pattern above needs one of these: URLs and header lines a ':', name=value pairs a '='
# (or '%3D'), quoted pairs a quote, JWTs their 'eyJ'.
_MAYBE_SECRET = re.compile(r"[:=%'\"]|eyJ")

# Secrets shorter than this are not masked verbatim: a 3-character password would turn every
# occurrence of those letters, in every line, into ***. They are still masked wherever a name
# or a URL announces them.
MIN_VERBATIM_LENGTH = 4


def mask_url_password(text: str) -> str:
    """`postgresql://user:secret@host/db` → `postgresql://user:***@host/db`, for any URL in
    `text`; text without a password is returned unchanged."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('url_head')}{MASK}@", text)


def _verbatim_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret as given, percent-encoded and percent-decoded (a password is read from a URL
    in its encoded form, and libraries print either), longest first so that a secret
    containing another is masked whole."""
    forms: set[str] = set()
    for secret in secrets:
        for form in (secret, quote(secret, safe=""), unquote(secret)):
            if len(form) >= MIN_VERBATIM_LENGTH:
                forms.add(form)
    return sorted(forms, key=lambda form: (-len(form), form))


class Redactor:
    """Masks credentials in text; built once (it compiles one pattern), then called per line.

    `secrets` are masked verbatim in addition to the patterns every instance knows."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        named = (_URL_USERINFO_TEXT, _QUOTED_PAIR, _NAME_VALUE, _HEADER_LINE)
        # Names and schemes in any case; JWTs and secrets exactly as they are.
        alternatives = [f"(?i:{pattern})" for pattern in named] + [_JWT]
        verbatim = _verbatim_forms(secrets)
        if verbatim:
            alternatives.append("(?:" + "|".join(re.escape(form) for form in verbatim) + ")")
        # One alternation, so a line is scanned once whatever the number of patterns.
        self._pattern = re.compile("|".join(alternatives))
        self._verbatim = tuple(verbatim)

    def __call__(self, text: str) -> str:
        # Most lines (an access log line, a request id) hold nothing any pattern needs: a
        # substring scan in C says so in a fraction of what the full pattern costs.
        if _MAYBE_SECRET.search(text) is None and not any(s in text for s in self._verbatim):
            return text
        return self._pattern.sub(_masked, text)


def _masked(match: re.Match[str]) -> str:
    groups = match.groupdict()
    if groups["url_head"] is not None:
        return f"{groups['url_head']}{MASK}@"
    if groups["pair_head"] is not None:
        return f"{groups['pair_head']}{MASK}{groups['vq']}"
    for head in ("kv_head", "header_head"):
        if groups[head] is not None:
            return f"{groups[head]}{MASK}"
    return MASK  # a JWT or a verbatim secret
