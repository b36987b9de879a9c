"""Job ids, error texts and clip values are written by callers and by Runware: the admin page
shows them as text, never as markup, and links only http(s) URLs. The CSP header backs this up."""

from __future__ import annotations

import asyncpg
import httpx

from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, AppFactory
from tests.projects import tracked_project

HOSTILE_KEY = "<img src=x onerror=alert(1)>"
ESCAPED_KEY = "&lt;img src=x onerror=alert(1)&gt;"
HOSTILE_ERROR = "Runware said <b onmouseover=alert(2)>no</b> & gave up"
ESCAPED_ERROR = "Runware said &lt;b onmouseover=alert(2)&gt;no&lt;/b&gt; &amp; gave up"
SCRIPT_URL = "javascript:alert(3)"


async def test_hostile_values_render_as_text(
    service_env: dict[str, str], run_app: AppFactory, db: asyncpg.Connection
) -> None:
    async with run_app(service_env) as app:
        # A key that is not a task id is never tracked, but the project view shows it; the
        # reason, from Runware, is kept on a tracked job and shown on both pages.
        project = await tracked_project(
            db, {HOSTILE_KEY: "pending", J.reason_holder: "pending", J.odd_value: SCRIPT_URL}
        )
        assert await app.services.store.note_job_error(J.reason_holder, HOSTILE_ERROR)
        async with httpx.AsyncClient(
            base_url=app.url, auth=("operator", ADMIN_TOKEN), timeout=30
        ) as client:
            project_page = await client.get(f"/admin/projects/{project}")
            overview_page = await client.get("/admin")
            as_json = await client.get(f"/admin/api/projects/{project}")

    for page in (project_page, overview_page):
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert HOSTILE_KEY not in page.text
        assert "<b onmouseover" not in page.text
        assert ESCAPED_ERROR in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
    assert ESCAPED_KEY in project_page.text
    assert 'href="javascript:' not in project_page.text
    assert SCRIPT_URL in project_page.text  # shown, as text
    # The JSON carries the values as they are (the page's script inserts them as text).
    assert as_json.headers["content-type"] == "application/json"
    clips = {clip["job_id"]: clip for clip in as_json.json()["clips"]}
    assert clips[J.reason_holder]["last_error"] == HOSTILE_ERROR
    assert clips[HOSTILE_KEY]["value"] == "pending"
