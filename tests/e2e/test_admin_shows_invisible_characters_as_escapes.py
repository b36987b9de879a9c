"""Clip keys, clip values and Runware's reasons can hold bidi overrides and other invisible
characters: the admin page shows them as the log lines and the terminal do, as visible escapes
(`\\u202e`), so a key holding U+202E cannot reorder the text after it. The page's refresh script
is handed the same character set (`data-unsafe`) and escapes what it inserts the same way
(test_admin_page_in_a_browser.py draws refreshed rows)."""

from __future__ import annotations

import html
import re

import asyncpg
import httpx

from reconciler.observability.logs import UNSAFE_RANGES, unsafe_pattern_for_javascript
from tests.plugin import ADMIN_TOKEN, AppFactory
from tests.projects import tracked_project

STUCK_JOB = "3c1f7a52-9d84-4e0b-b6a2-5f8e1d7c4a93"
ODD_VALUE_JOB = "a7e2c9d1-4b6f-4a38-8e15-0d9c3b7f2e64"
# A settled clip whose key reverses what follows it: "…fdp.exe" reads as "…exe.pdf".
REORDERING_KEY = "invoice\u202efdp.exe"
REORDERING_KEY_SHOWN = "invoice\\u202efdp.exe"
HIDDEN_ERROR = "Runware said \u2066no\u2069 \u061c\u00ad\U000e0041 \ufff9x\ufffb"
HIDDEN_ERROR_SHOWN = "Runware said \\u2066no\\u2069 \\u061c\\xad\\U000e0041 \\ufff9x\\ufffb"
ODD_VALUE = "\u202edone\u200b"
ODD_VALUE_SHOWN = "\\u202edone\\u200b"
DONE_URL = "https://vm.runware.ai/video/os/x/ws/2/vi/done.mp4"


def _raw_unsafe(text: str) -> list[str]:
    return [
        f"U+{ord(char):04X}"
        for char in text
        if any(first <= ord(char) <= last for first, last in UNSAFE_RANGES) and char != "\n"
    ]


async def test_the_page_shows_bidi_and_invisible_characters_as_escapes(
    service_env: dict[str, str], run_app: AppFactory, db: asyncpg.Connection
) -> None:
    async with run_app(service_env) as app:
        project = await tracked_project(
            db, {STUCK_JOB: "pending", ODD_VALUE_JOB: ODD_VALUE, REORDERING_KEY: DONE_URL}
        )
        assert await app.services.store.note_job_error(STUCK_JOB, HIDDEN_ERROR)
        async with httpx.AsyncClient(
            base_url=app.url, auth=("operator", ADMIN_TOKEN), timeout=30
        ) as client:
            project_page = await client.get(f"/admin/projects/{project}")
            overview_page = await client.get("/admin")
            as_json = await client.get(f"/admin/api/projects/{project}")

    assert project_page.status_code == overview_page.status_code == 200
    for page in (project_page, overview_page):
        assert _raw_unsafe(page.text) == []
        assert HIDDEN_ERROR_SHOWN in html.unescape(page.text)
        # The refresh script gets the server's set: one definition of what is unsafe.
        unsafe = re.search(r'data-unsafe="([^"]*)"', page.text)
        assert unsafe is not None
        assert html.unescape(unsafe.group(1)) == unsafe_pattern_for_javascript()
        assert "/admin/static/escape.js" in page.text
    shown = html.unescape(project_page.text)
    assert REORDERING_KEY_SHOWN in shown
    assert ODD_VALUE_SHOWN in shown
    # The JSON carries the values as they are (`reconciler status --url` escapes them itself).
    clips = {clip["job_id"]: clip for clip in as_json.json()["clips"]}
    assert clips[STUCK_JOB]["last_error"] == HIDDEN_ERROR
    assert clips[ODD_VALUE_JOB]["value"] == ODD_VALUE
    assert REORDERING_KEY in clips
