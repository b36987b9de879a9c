"""Writes that bypass triggers (session_replication_role = replica, as logical replication and
pg_restore use) leave no outbox row. The throttled resync scans `projects` in keyset pages and
tracks what they added; so does `reconciler resync`."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg

from reconciler.store.functions import FunctionStore
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import new_project


async def _write_without_triggers(db: asyncpg.Connection, count: int) -> list[UUID]:
    async with db.transaction():
        await db.execute("set local session_replication_role = replica")
        return [await new_project(db, {J.named(f"bypass-{i}"): "pending"}) for i in range(count)]


async def test_resync_pages_track_what_the_trigger_never_saw(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    projects = await _write_without_triggers(db, 7)
    await new_project(db, {"settled": "failed"})
    assert await db.fetchval("select count(*) from reconciler.changed_projects") == 1
    assert (await store.drain_changes(100, 0, 0)).projects == 1
    assert await store.projects_with_pending(None, 100) == []

    pages = []
    after = None
    while True:
        page = await store.resync_page(after, 3, 0, 0)
        pages.append(page)
        if page.last is None:
            break
        after = page.last

    assert [p.scanned for p in pages] == [3, 3, 2]
    assert sum(p.reconciled for p in pages) == 7
    assert sorted(await store.projects_with_pending(None, 100)) == sorted(projects)


async def test_resync_command_tracks_them(
    service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    projects = await _write_without_triggers(db, 3)

    done = await asyncio.to_thread(run_reconciler, service_env, "resync")

    assert done.returncode == 0, done.stderr
    assert "Scanned 3 projects" in done.stdout
    tracked = await db.fetch("select distinct project_id from reconciler.jobs")
    assert sorted(r["project_id"] for r in tracked) == sorted(projects)
