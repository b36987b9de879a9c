"""The realtime feed turns the app's writes of pending clips into `project_changed` hints."""

from __future__ import annotations

import asyncpg

from tests.projects import add_pending_clip, new_project
from tests.realtime_harness import feed_on_standin, subscribed_feed
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS
from tests.waiting import wait_until

pytestmark = IGNORE_WEBSOCKETS_DEPRECATIONS

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"


async def test_a_clip_added_by_the_app_is_hinted(database_url: str, db: asyncpg.Connection) -> None:
    async with subscribed_feed(database_url) as (_, feed, hints):
        project = await new_project(db, {"done": URL})

        await add_pending_clip(db, project, "job-1")

        await wait_until(lambda: hints.changed == [project])
        assert hints.resyncs == 1
        assert feed.events_received == 2  # the insert, then the update
        assert feed.rebuilds == 0


async def test_rows_without_pending_clips_and_deletes_are_not_hinted(
    database_url: str, db: asyncpg.Connection
) -> None:
    async with subscribed_feed(database_url) as (_, feed, hints):
        settled = await new_project(db, {"a": URL, "b": "failed"})
        doomed = await new_project(db, {"c": URL})
        await db.execute("delete from public.projects where id = $1", doomed)
        # Changes arrive in commit order, so once this one is hinted the others were seen.
        marker = await new_project(db, {"d": "pending"})

        await wait_until(lambda: hints.changed == [marker])
        assert settled not in hints.changed
        assert feed.events_received == 4
        assert feed.callback_errors == 0


async def test_a_record_the_server_trimmed_is_hinted_anyway(
    database_url: str, db: asyncpg.Connection
) -> None:
    """Oversize records arrive cut down, with "Payload Too Large": they cannot be judged."""
    async with feed_on_standin(database_url) as (_, feed, hints):
        await wait_until(lambda: feed.state == "subscribed")
        big = {f"job-{n}": URL for n in range(200)}
        project = await new_project(db, big)

        await wait_until(lambda: hints.changed == [project])
