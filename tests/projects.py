"""Arranging and reading `public.projects` rows the way the app does."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg


async def new_project(
    db: asyncpg.Connection, clips: dict[str, Any], name: str = "", owner: UUID | None = None
) -> UUID:
    """`owner` is the row's user_id: the user the app's row-level security lets read it."""
    project_id = uuid4()
    await db.execute(
        "insert into public.projects (id, name, clips, user_id) values ($1, $2, $3, $4)",
        project_id,
        name,
        clips,
        owner,
    )
    return project_id


async def tracked_project(db: asyncpg.Connection, clips: dict[str, Any], name: str = "") -> UUID:
    """A project the engine has already seen: inserted, then the outbox drained (as the
    engine does every poll interval), so its pending jobs are tracked."""
    project_id = await new_project(db, clips, name)
    await db.execute("select public.reconciler_drain_changes(10000, 0, 0)")
    return project_id


async def clips_of(db: asyncpg.Connection, project_id: UUID) -> dict[str, Any]:
    clips: dict[str, Any] = await db.fetchval(
        "select clips from public.projects where id = $1", project_id
    )
    return clips


async def row_version(db: asyncpg.Connection, project_id: UUID) -> str:
    """The row's xmin: it changes with every write to the row, and only then."""
    version: str = await db.fetchval(
        "select xmin::text from public.projects where id = $1", project_id
    )
    return version


async def add_pending_clip(
    db: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, project_id: UUID, job_id: str
) -> None:
    """The app's own atomic write of a new pending job."""
    await db.execute(
        "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
        " where id = $1",
        project_id,
        job_id,
    )
