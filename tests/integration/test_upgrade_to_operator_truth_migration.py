"""Migrations are append-only: a database on every file before the operator-truth file, holding
results already applied and one for a job no project holds, upgrades with `reconciler migrate`
(and takes the file a second time); afterwards its overview counts only the parked one, and a
check can read why a clip failed, and the admin search finds a project by a job id."""

from __future__ import annotations

import json
from uuid import UUID

import asyncpg

from reconciler.migrations import apply_migrations, migration_files
from tests.databases import PgCluster

NEW_FILE = "20261208070000_clip_reconciler_operator_truth.sql"
PROJECT = UUID("00000000-0000-4000-8000-000000000071")
APPLIED = [f"7a0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f{i}" for i in range(5)]
FAILED = "7c0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f8"
UNKNOWN = "7b0f6a7e-1b2c-4d5e-8f90-a1b2c3d4e5f9"
URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"


async def test_the_overview_counts_only_results_still_parked_after_the_upgrade(
    pg_cluster: PgCluster,
) -> None:
    url = await pg_cluster.create_baseline_database()
    conn = await asyncpg.connect(url)
    try:
        for path in migration_files():
            if path.name < NEW_FILE:
                await conn.execute(path.read_text())
        await conn.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            PROJECT,
            json.dumps(dict.fromkeys([*APPLIED, FAILED], "pending")),
        )
        await conn.execute("select public.reconciler_drain_changes(10000, 0, 0)")
        for job_id in [*APPLIED, UNKNOWN]:
            await conn.execute(
                "select public.reconciler_ingest_result($1, $2, null, 0)", job_id, URL
            )
        await conn.execute(
            "select public.reconciler_ingest_result($1, 'failed', 'Runware: content policy', 0)",
            FAILED,
        )
        before = json.loads(
            await conn.fetchval("select public.reconciler_operator_overview(20)::text")
        )

        first = await apply_migrations(url)
        await conn.execute(
            (migration_files()[-1].parent / NEW_FILE).read_text()
        )  # a second time: idempotent
        after = json.loads(
            await conn.fetchval("select public.reconciler_operator_overview(20)::text")
        )
        reasons = json.loads(
            await conn.fetchval(
                "select public.reconciler_failure_reasons($1, $2)::text", PROJECT, [FAILED]
            )
        )
        found = json.loads(
            await conn.fetchval("select public.reconciler_operator_find($1)::text", UUID(FAILED))
        )
        made_due = await conn.fetchval("select public.reconciler_make_due_now(100)")
        clips = json.loads(
            await conn.fetchval("select clips::text from public.projects where id = $1", PROJECT)
        )
    finally:
        await conn.close()

    assert NEW_FILE in first
    assert before["parked_results"] == 7  # the count this file corrects: every result
    assert clips == dict.fromkeys(APPLIED, URL) | {FAILED: "failed"}
    assert reasons == {FAILED: "Runware: content policy"}
    assert found == {"project": False, "job_projects": [str(PROJECT)]}
    assert made_due == 0  # every job settled: nothing pending to make due
    assert after["parked_results"] == 1
