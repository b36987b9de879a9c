"""The migration must not get in the app's way: its roles keep writing `projects` as before
(index expressions and triggers are evaluated as the writing role)."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import pytest

from tests.projects import clips_of, new_project

OWNER = UUID("00000000-0000-0000-0000-0000000000cc")


@pytest.mark.parametrize("role", ["service_role", "authenticated"])
async def test_api_roles_insert_and_update_projects(db: asyncpg.Connection, role: str) -> None:
    project = await new_project(db, {"a": "pending"})
    await db.execute("update public.projects set user_id = $1 where id = $2", OWNER, project)
    await db.execute(
        "create policy test_owner_writes on public.projects for all to authenticated"
        " using (user_id = auth.uid()) with check (user_id = auth.uid())"
    )
    async with db.transaction():
        await db.execute(f"set local role {role}")
        await db.execute(
            "select set_config('request.jwt.claims', $1, true)", f'{{"sub": "{OWNER}"}}'
        )
        await db.execute(
            'insert into public.projects (user_id, clips) values ($1, \'{"n": "pending"}\')',
            OWNER,
        )
        updated = await db.execute(
            'update public.projects set clips = clips || \'{"b": "pending"}\' where id = $1',
            project,
        )
    assert updated == "UPDATE 1"
    assert await clips_of(db, project) == {"a": "pending", "b": "pending"}


async def test_api_roles_still_cannot_read_the_private_tables(db: asyncpg.Connection) -> None:
    async with db.transaction():
        await db.execute("set local role authenticated")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await db.fetch("select * from reconciler.jobs")
