"""A project tracks at most RECONCILER_MAX_PENDING_PER_PROJECT unsettled jobs (1,000 by
default): one user's project cannot make the poller carry an unbounded number of jobs. Keys
beyond it are recorded as not tracked, with the reason, and counted — never silently dropped —
and are tracked once the project's jobs settle."""

from __future__ import annotations

from uuid import uuid4

import asyncpg

from reconciler.clips import over_limit_reason
from reconciler.store.functions import FunctionStore
from tests.projects import new_project

LIMIT = 1_000  # the default


async def test_keys_beyond_the_default_limit_are_recorded_with_the_reason_and_counted(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    keys = sorted(str(uuid4()) for _ in range(LIMIT + 1))
    project = await new_project(db, dict.fromkeys(keys, "pending"))

    await store.drain_changes(500, 0, 0)

    tracked = await db.fetchval(
        "select count(*) from reconciler.jobs where project_id = $1 and settled_at is null",
        project,
    )
    recorded = await db.fetch(
        "select key_prefix, last_error from reconciler.untrackable_clips where project_id = $1",
        project,
    )
    assert tracked == LIMIT
    assert [(r["key_prefix"], r["last_error"]) for r in recorded] == [
        (keys[-1], over_limit_reason(LIMIT))
    ]
    assert over_limit_reason(LIMIT) == (
        "project has more than 1000 pending jobs (RECONCILER_MAX_PENDING_PER_PROJECT);"
        " it is not tracked"
    )
    assert (await store.pending_stats()).untrackable == 1

    # The app settles one itself; the next reconcile of the project tracks the last key.
    await db.execute(
        "update public.projects set clips = clips || jsonb_build_object($2::text, 'failed')"
        " where id = $1",
        project,
        keys[0],
    )
    await store.drain_changes(500, 0, 0)

    assert (await store.pending_stats()).untrackable == 0
    assert await db.fetchval(
        "select settled_at is null from reconciler.jobs where project_id = $1 and job_id = $2",
        project,
        keys[-1],
    )


async def test_the_service_writes_its_limit_where_every_tracking_path_reads_it(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    assert await store.set_tracking_limits(3) == 0
    keys = sorted(str(uuid4()) for _ in range(5))

    project = await new_project(db, dict.fromkeys(keys, "pending"))
    await store.drain_changes(500, 0, 0)

    assert await store.set_tracking_limits(3) == 2
    assert (
        await db.fetchval("select max_pending_per_project from reconciler.tracking_settings") == 3
    )
    assert (
        await db.fetchval("select count(*) from reconciler.jobs where project_id = $1", project)
        == 3
    )
