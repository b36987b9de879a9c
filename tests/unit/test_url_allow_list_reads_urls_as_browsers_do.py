"""The URL allow-list accepts only URLs that every parser reads the same way.

`https://evil.example\\@vm.runware.ai/v.mp4` is host `vm.runware.ai` to Python's `urlsplit` and
host `evil.example` to a browser: a check done with one parser and a link followed with another
would disagree. Every form below was one where two common parsers can differ (or one that is
simply not on the list); each must be refused, the plain forms accepted."""

from __future__ import annotations

import pytest

from reconciler.clips import AllowedOrigin, UrlPolicy, parse_allowed_origin

POLICY = UrlPolicy.from_entries(["vm.runware.ai", "http://127.0.0.1:8100"])

ACCEPTED = [
    "https://vm.runware.ai/video/os/x/ws/2/vi/v.mp4",
    "https://VM.Runware.AI/v.mp4",  # hosts compare case-insensitively
    "HTTPS://vm.runware.ai/v.mp4",
    "https://vm.runware.ai:443/v.mp4",  # the default port, spelled out
    "https://vm.runware.ai",
    "https://vm.runware.ai/v.mp4?sig=abc%20def#t=1",  # percent-encoding outside the host
    "http://127.0.0.1:8100/video/v.mp4",  # an entry naming that exact origin
]

REFUSED = {
    "backslash-userinfo": "https://evil.example\\@vm.runware.ai/v.mp4",
    "backslash-path": "https://vm.runware.ai\\evil.example/v.mp4",
    "userinfo": "https://evil.example@vm.runware.ai/v.mp4",
    "userinfo-password": "https://user:pw@vm.runware.ai/v.mp4",
    "userinfo-empty": "https://@vm.runware.ai/v.mp4",
    "other-port": "https://vm.runware.ai:8443/v.mp4",
    "empty-port": "https://vm.runware.ai:/v.mp4",
    "port-of-another-entry": "https://vm.runware.ai:8100/v.mp4",
    "entry-origin-other-scheme": "https://127.0.0.1:8100/v.mp4",
    "entry-origin-default-port": "http://127.0.0.1/v.mp4",
    "space": "https://vm.runware.ai/v 1.mp4",
    "leading-space": " https://vm.runware.ai/v.mp4",
    "tab-in-host": "https://vm.run\tware.ai/v.mp4",
    "newline": "https://vm.runware.ai/v.mp4\n",
    "nul": "https://vm.runware.ai\x00.evil.example/v.mp4",
    "del": "https://vm.runware.ai/\x7f.mp4",
    "percent-encoded-host": "https://vm%2erunware.ai/v.mp4",
    "percent-encoded-at": "https://evil.example%40vm.runware.ai/v.mp4",
    "non-ascii-host": "https://vm.runw\u0430re.ai/v.mp4",  # a Cyrillic a
    "fullwidth-dot": "https://vm\uff0erunware.ai/v.mp4",
    "trailing-dot": "https://vm.runware.ai./v.mp4",
    "empty-label": "https://vm..runware.ai/v.mp4",
    "ipv6-literal": "https://[::1]/v.mp4",
    "http": "http://vm.runware.ai/v.mp4",
    "other-host": "https://evil.example/v.mp4",
    "suffix-host": "https://vm.runware.ai.evil.example/v.mp4",
    "prefix-host": "https://evilvm.runware.ai/v.mp4",
    "no-slashes": "https:vm.runware.ai/v.mp4",
    "one-slash": "https:/vm.runware.ai/v.mp4",
    "three-slashes": "https:///vm.runware.ai/v.mp4",
    "javascript": "javascript:alert(1)//vm.runware.ai",
    "ftp": "ftp://vm.runware.ai/v.mp4",
    "empty": "",
}


@pytest.mark.parametrize("url", ACCEPTED)
def test_plain_urls_on_the_list_are_accepted(url: str) -> None:
    assert POLICY.rejects(url) is None


@pytest.mark.parametrize("url", list(REFUSED.values()), ids=list(REFUSED))
def test_every_ambiguous_or_foreign_form_is_refused(url: str) -> None:
    reason = POLICY.rejects(url)
    assert reason is not None
    assert reason.startswith("video URL")


@pytest.mark.parametrize(
    ("entry", "origin"),
    [
        ("vm.runware.ai", AllowedOrigin("https", "vm.runware.ai", 443)),
        ("VM.runware.ai", AllowedOrigin("https", "vm.runware.ai", 443)),
        ("https://cdn.example.org", AllowedOrigin("https", "cdn.example.org", 443)),
        ("http://127.0.0.1:8100", AllowedOrigin("http", "127.0.0.1", 8100)),
        ("http://localhost:8100/", AllowedOrigin("http", "localhost", 8100)),
    ],
)
def test_allow_list_entries_are_hosts_or_exact_origins(entry: str, origin: AllowedOrigin) -> None:
    assert parse_allowed_origin(entry) == origin


@pytest.mark.parametrize(
    "entry",
    ["user@vm.runware.ai", "vm.runware.ai/video", "ftp://vm.runware.ai", "vm runware", "vm.ai."],
)
def test_malformed_allow_list_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"entry|host|scheme|user|whitespace|dot"):
        parse_allowed_origin(entry)
