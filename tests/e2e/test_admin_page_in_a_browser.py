"""The admin page in a real browser (Debian's chromium, driven by Playwright): an operator
logs in with the admin token, sees a job stuck behind a Runware that keeps answering
"processing", presses "check now" once Runware has finished it, and sees the clip settle.
The page runs under its own Content-Security-Policy: any violation (an inline script or
style slipping in) is a console error, and fails the test.

Screenshots go to `$TEST_ARTIFACTS_DIR` (or the test's tmp_path); the paths are printed.
`RECONCILER_UPDATE_DOCS_SCREENSHOT=1` also copies the overview to docs/admin.png (the README's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from reconciler.local.simulator import RunwareSimulator
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ENGINE_ENV, AppFactory
from tests.projects import clips_of, tracked_project
from tests.waiting import wait_until

CHROMIUM = Path("/usr/bin/chromium")
STUCK_JOB = "7f3d1c2e-5b8a-4e69-9c1d-2a6b8e4f0c11"
FAILED_JOB = "0b9e4a7d-3c21-4f8e-a6d5-91c7e2b4f803"
DONE_URL = "https://vm.runware.ai/video/os/a1/ws/2/vi/finished-earlier.mp4"
REPOSITORY = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(300)
# Playwright's own waits default to 5 s; a loaded machine can take longer to render a page or
# run a check. A wait ends as soon as its condition holds, so a long bound costs nothing.
expect.set_options(timeout=30_000)


@pytest.fixture
def chromium() -> Path:
    # Not a skip: a missing browser would silently drop the page's only end-to-end test.
    assert CHROMIUM.exists(), "Debian's chromium is missing: run scripts/setup"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Never `playwright install`: the distribution's browser, headless, in a container.
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        yield launched
        await launched.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    configured = os.environ.get("TEST_ARTIFACTS_DIR")
    directory = Path(configured) if configured else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


async def _screenshot(page: Page, path: Path) -> None:
    await page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


async def _job_row(client: httpx.AsyncClient, project: UUID, job_id: str) -> dict[str, Any]:
    answer = await client.get(f"/admin/api/projects/{project}")
    assert answer.status_code == 200
    rows: list[dict[str, Any]] = answer.json()["clips"]
    return next(row for row in rows if row["job_id"] == job_id)


async def test_operator_checks_a_stuck_clip_until_it_settles(
    browser: Browser,
    service_env: dict[str, str],
    run_app: AppFactory,
    db: asyncpg.Connection,
    simulator: RunwareSimulator,
    artifacts: Path,
) -> None:
    simulator.add_job(STUCK_JOB, duration=3600)  # Runware answers "processing" until told
    simulator.add_job(
        FAILED_JOB,
        duration=0,
        outcome="error",
        error_code="invalidPrompt",
        error_message="The prompt was refused by the content filter",
    )
    project = await tracked_project(db, {STUCK_JOB: "pending", J.earlier_job: DONE_URL})
    other = await tracked_project(db, {FAILED_JOB: "pending"})
    # The engine runs (a replica with a feed, polls that record attempts and progress), but
    # after its first look at a job it waits an hour: only "check now" can settle the clip.
    env = (
        service_env
        | ENGINE_ENV
        | {
            "RECONCILER_BACKOFF_BASE_SECONDS": "3600",
            "RECONCILER_BACKOFF_CAP_SECONDS": "3600",
            "RECONCILER_SWEEP_INTERVAL_SECONDS": "3600",
        }
    )
    console_errors: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} ({message.location.get('url')})")

    async with (
        run_app(env) as app,
        httpx.AsyncClient(base_url=app.url, auth=("ops", ADMIN_TOKEN), timeout=30) as api,
    ):
        url = app.url

        async def polled_once() -> bool:
            stuck = await _job_row(api, project, STUCK_JOB)
            return app.engine.stats.sweeps >= 1 and (stuck["attempts"] or 0) >= 1

        await wait_until(polled_once)
        await wait_until(lambda: _is_failed(db, other))
        context = await browser.new_context(
            http_credentials={"username": "operator", "password": ADMIN_TOKEN},
            viewport={"width": 1280, "height": 900},
        )
        page = await context.new_page()
        page.set_default_timeout(30_000)
        page.on("console", note)
        page.on("pageerror", lambda error: console_errors.append(str(error)))

        await page.goto(f"{url}/admin")
        stuck_row = page.locator("#oldest tr", has_text=STUCK_JOB)
        await expect(stuck_row).to_be_visible()
        await expect(page.locator("#failures tr", has_text=FAILED_JOB)).to_contain_text(
            "refused by the content filter"
        )
        await expect(page.locator("#replicas tr.alive")).to_have_count(1, timeout=20_000)
        # The refresh script reads the JSON (with the browser's own Basic credentials).
        await expect(page.locator("#refresh-status")).to_contain_text("updated", timeout=20_000)
        await expect(stuck_row).to_be_visible()
        overview_shot = artifacts / "admin-overview.png"
        await _screenshot(page, overview_shot)

        await stuck_row.get_by_role("link").click()
        await expect(page).to_have_url(f"{url}/admin/projects/{project}")
        clip_row = page.locator("#clips tr", has_text=STUCK_JOB)
        await expect(clip_row.locator(".status")).to_have_text("pending")

        await page.locator("#check-now").click()  # Runware: still processing
        await expect(page.locator("#flash")).to_contain_text("1 completed, 1 pending, 0 failed")
        await expect(clip_row.locator(".status")).to_have_text("pending")
        assert (await clips_of(db, project))[STUCK_JOB] == "pending"

        simulator.complete_now(STUCK_JOB)
        assert (await clips_of(db, project))[STUCK_JOB] == "pending"  # nobody polls it now
        await page.locator("#check-now").click()

        await expect(page.locator("#flash")).to_contain_text("2 completed, 0 pending, 0 failed")
        await expect(page).to_have_url(f"{url}/admin/projects/{project}?checked=2-0-0-0")
        video_url = simulator.truth()[STUCK_JOB]
        await expect(clip_row.locator(".status")).to_have_text("completed")
        await expect(clip_row.locator(".value a")).to_have_attribute("href", video_url)
        assert (await clips_of(db, project))[STUCK_JOB] == video_url
        # The project page's refresh script redraws the rows from the JSON, the same.
        await expect(page.locator("#refresh-status")).to_contain_text("updated", timeout=20_000)
        await expect(clip_row.locator(".status")).to_have_text("completed")
        await expect(clip_row.locator(".value a")).to_have_attribute("href", video_url)
        await _screenshot(page, artifacts / "admin-project.png")
        await context.close()

    assert console_errors == []
    if os.environ.get("RECONCILER_UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(overview_shot, REPOSITORY / "docs" / "admin.png")


async def _is_failed(db: asyncpg.Connection, project: UUID) -> bool:
    value: object = (await clips_of(db, project))[FAILED_JOB]
    return value == "failed"


async def test_refreshed_rows_show_hostile_values_as_text(
    browser: Browser,
    service_env: dict[str, str],
    run_app: AppFactory,
    db: asyncpg.Connection,
) -> None:
    """What the refresh script draws is as inert as what the server rendered: a job id that is
    an HTML tag stays text, and no script runs (no dialog opens)."""
    hostile = "<img src=x onerror=alert(1)>"  # not a task id: shown, never tracked
    project = await tracked_project(
        db,
        {hostile: "pending", J.reason_holder: "pending", J.odd_value: "javascript:alert(2)"},
    )
    dialogs: list[str] = []
    async with run_app(service_env) as app:
        assert await app.services.store.note_job_error(
            J.reason_holder, "<b onclick=alert(3)>no</b>"
        )
        context = await browser.new_context(
            http_credentials={"username": "operator", "password": ADMIN_TOKEN}
        )
        page = await context.new_page()
        page.set_default_timeout(30_000)
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))

        for path in (f"/admin/projects/{project}", "/admin"):
            await page.goto(f"{app.url}{path}")
            await expect(page.locator("#refresh-status")).to_contain_text("updated", timeout=20_000)
            if path != "/admin":  # the overview lists tracked jobs only: task ids
                await expect(page.locator("main").get_by_text(hostile, exact=True)).to_be_visible()
            await expect(page.locator("main img")).to_have_count(0)
            await expect(page.locator("main b")).to_have_count(0)
            await expect(
                page.locator("main").get_by_text("<b onclick=alert(3)>no</b>")
            ).to_be_visible()
            await expect(page.locator('a[href^="javascript:"]')).to_have_count(0)
        await context.close()

    assert dialogs == []


async def test_refreshed_rows_show_bidi_and_invisible_characters_as_escapes(
    browser: Browser,
    service_env: dict[str, str],
    run_app: AppFactory,
    db: asyncpg.Connection,
) -> None:
    """The refresh script escapes what it draws as the server rendered it (escape.js, with the
    server's character set): a key holding U+202E cannot reorder the row, a reason holding
    isolates and tag characters shows them as escapes."""
    reordering_key = "invoice\u202efdp.exe"
    job = "c4d2e8f1-7a3b-4c59-9e06-b1f5a2d8c347"
    reason = "Runware said \u2066no\u2069 \u061c\U000e0041"
    project = await tracked_project(
        db, {job: "pending", reordering_key: "https://vm.runware.ai/video/os/x/ws/2/vi/a.mp4"}
    )
    async with run_app(service_env) as app:
        assert await app.services.store.note_job_error(job, reason)
        context = await browser.new_context(
            http_credentials={"username": "operator", "password": ADMIN_TOKEN}
        )
        page = await context.new_page()
        page.set_default_timeout(30_000)
        await page.goto(f"{app.url}/admin/projects/{project}")
        await expect(page.locator("#refresh-status")).to_contain_text("updated", timeout=20_000)
        clips = page.locator("#clips")
        await expect(clips.get_by_text("invoice\\u202efdp.exe", exact=True)).to_be_visible()
        await expect(
            clips.get_by_text("Runware said \\u2066no\\u2069 \\u061c\\U000e0041", exact=True)
        ).to_be_visible()
        drawn = await clips.inner_text()
        await context.close()

    assert "\u202e" not in drawn
    assert "\u2066" not in drawn
    assert "\U000e0041" not in drawn
