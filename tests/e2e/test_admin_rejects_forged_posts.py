"""The "check now" action acts only on a post from the admin page itself: a missing or forged
CSRF token, another site's Origin, or no evidence of where the post comes from → 403, and
nothing is checked (no request reaches Runware, the clips stay as they were)."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from uuid import UUID

import asyncpg
import httpx
import pytest

from reconciler.http.csrf import COOKIE_NAME
from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ServiceFactory
from tests.projects import clips_of, new_project

JOB = J.job_finished_at_runware
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(frozen=True)
class AdminSession:
    """A logged-in browser's state: its client (cookie jar), the form's token, the project."""

    client: httpx.AsyncClient
    url: str
    project: UUID
    token: str

    @property
    def action(self) -> str:
        return f"/admin/projects/{self.project}/check"

    def same_origin(self) -> dict[str, str]:
        return {"Origin": self.url, "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
async def session(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
) -> AsyncIterator[AdminSession]:
    simulator.add_job(JOB, duration=0, outcome="success")  # a check would settle it
    project = await new_project(db, {JOB: "pending"})
    async with (
        run_service(service_env) as url,
        httpx.AsyncClient(base_url=url, auth=("operator", ADMIN_TOKEN), timeout=30) as client,
    ):
        page = await client.get(f"/admin/projects/{project}")
        assert page.status_code == 200
        assert COOKIE_NAME in client.cookies
        match = TOKEN_FIELD.search(page.text)
        assert match is not None
        yield AdminSession(client, url, project, match.group(1))


async def _assert_refused_and_unchanged(
    response: httpx.Response, simulator: RunwareSimulator, db: asyncpg.Connection, project: UUID
) -> None:
    assert response.status_code == 403
    assert "Nothing was changed" in response.text
    assert simulator.counters.requests_total == 0
    assert await clips_of(db, project) == {JOB: "pending"}


def _tampered(token: str) -> str:
    nonce, _, mac = token.partition(".")
    return f"{nonce}.{'0' if mac[0] != '0' else '1'}{mac[1:]}"


Forgery = Callable[[AdminSession], tuple[dict[str, str], dict[str, str]]]
FORGERIES: dict[str, Forgery] = {
    "no token": lambda s: ({}, s.same_origin()),
    "empty token": lambda s: ({"csrf_token": ""}, s.same_origin()),
    "tampered MAC": lambda s: ({"csrf_token": _tampered(s.token)}, s.same_origin()),
    "another form's nonce": lambda s: (
        {"csrf_token": secrets.token_urlsafe(24) + "." + s.token.partition(".")[2]},
        s.same_origin(),
    ),
    "foreign Origin": lambda s: (
        {"csrf_token": s.token},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
    ),
    "cross-site fetch": lambda s: ({"csrf_token": s.token}, {"Sec-Fetch-Site": "cross-site"}),
    "same-site fetch": lambda s: ({"csrf_token": s.token}, {"Sec-Fetch-Site": "same-site"}),
    "foreign Referer only": lambda s: (
        {"csrf_token": s.token},
        {"Referer": "https://evil.example/admin"},
    ),
    "no origin evidence": lambda s: ({"csrf_token": s.token}, {}),
    "Origin null only": lambda s: ({"csrf_token": s.token}, {"Origin": "null"}),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
async def test_forged_post_is_refused(
    session: AdminSession,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    forge: Forgery,
) -> None:
    form, headers = forge(session)

    response = await session.client.post(session.action, data=form, headers=headers)

    await _assert_refused_and_unchanged(response, simulator, db, session.project)


async def test_post_without_the_cookie_is_refused(
    session: AdminSession, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    session.client.cookies.clear()

    response = await session.client.post(
        session.action, data={"csrf_token": session.token}, headers=session.same_origin()
    )

    await _assert_refused_and_unchanged(response, simulator, db, session.project)


async def test_token_of_another_browser_is_refused(
    session: AdminSession, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    """A token is bound to the cookie it was rendered for: an attacker's own valid pair does
    not work with the victim's cookie."""
    session.client.cookies.set(COOKIE_NAME, secrets.token_urlsafe(24), path="/admin")

    response = await session.client.post(
        session.action, data={"csrf_token": session.token}, headers=session.same_origin()
    )

    await _assert_refused_and_unchanged(response, simulator, db, session.project)


async def test_oversized_form_is_refused(
    session: AdminSession, simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    response = await session.client.post(
        session.action,
        data={"csrf_token": session.token, "padding": "x" * 10_000},
        headers=session.same_origin(),
    )

    assert response.status_code == 413
    assert simulator.counters.requests_total == 0
    assert await clips_of(db, session.project) == {JOB: "pending"}


@pytest.mark.parametrize(
    "origin_headers",
    [
        {"Sec-Fetch-Site": "same-origin", "Origin": "null"},  # Referrer-Policy: no-referrer
        {"Origin": "{url}"},
        {"Referer": "{url}/admin/projects/x"},
    ],
    ids=["fetch-metadata", "origin", "referer"],
)
async def test_post_from_the_page_checks_and_redirects(
    session: AdminSession,
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    origin_headers: dict[str, str],
) -> None:
    """The control: the same post with the page's token and cookie does check."""
    headers = {name: value.format(url=session.url) for name, value in origin_headers.items()}

    response = await session.client.post(
        session.action, data={"csrf_token": session.token}, headers=headers
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/admin/projects/{session.project}?checked=1-0-0-0"
    assert simulator.counters.requests_total >= 1
    assert await clips_of(db, session.project) == {JOB: simulator.truth()[JOB]}
    followed = await session.client.get(response.headers["location"])
    assert "Checked just now. Clips now: 1 completed, 0 pending, 0 failed." in followed.text


async def test_bad_project_id_is_refused_without_a_check(
    session: AdminSession, simulator: RunwareSimulator
) -> None:
    response = await session.client.post(
        "/admin/projects/not-a-uuid/check",
        data={"csrf_token": session.token},
        headers=session.same_origin(),
    )

    assert response.status_code == 400
    assert simulator.counters.requests_total == 0
