"""One project's backlog of due jobs never holds back another project's lone job: a claim
takes every project's oldest due job first (then every project's second, ...), and at most
RECONCILER_CLAIM_PER_PROJECT of one project per round. Before, claims were ordered by due time
across all projects: 5,000 overdue jobs of one project (ids Runware does not know) filled
every batch ahead of a lone job that became due later."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg

from reconciler.store.functions import FunctionStore
from tests.projects import new_project

BACKLOG = 5_000
BATCH = 200


async def _backlog_and_a_lone_job(db: asyncpg.Connection) -> tuple[UUID, UUID, str]:
    """A project whose 5,000 jobs have been due for an hour, and another whose one job
    became due a second ago: the lone job is the newest due job of all."""
    busy_keys = [str(uuid4()) for _ in range(BACKLOG)]
    busy = await new_project(db, dict.fromkeys(busy_keys, "pending"))
    lone_key = str(uuid4())
    lone = await new_project(db, {lone_key: "pending"})
    # As tracked and rescheduled by earlier rounds (the per-project tracking limit is not
    # what this test is about, so the rows are written directly).
    await db.execute(
        "insert into reconciler.jobs (project_id, job_id, next_check_at)"
        " select $1, k, now() - interval '1 hour' + n * interval '1 ms'"
        " from unnest($2::text[]) with ordinality as t(k, n)",
        busy,
        busy_keys,
    )
    await db.execute(
        "insert into reconciler.jobs (project_id, job_id, next_check_at)"
        " values ($1, $2, now() - interval '1 second')",
        lone,
        lone_key,
    )
    return busy, lone, lone_key


async def test_a_lone_job_is_in_the_first_claim_beside_a_5000_job_backlog(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    busy, lone, lone_key = await _backlog_and_a_lone_job(db)

    claimed = await store.claim_due_jobs("poller", BATCH, 30)

    assert lone_key in {job.job_id for job in claimed}
    assert len(claimed) == BATCH  # the rest of the batch still goes to the backlog
    assert {job.project_id for job in claimed} == {busy, lone}


async def test_one_project_gives_at_most_its_share_of_a_round(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    busy, lone, _ = await _backlog_and_a_lone_job(db)

    first = await store.claim_due_jobs("a", BATCH, 30, per_project=50)
    second = await store.claim_due_jobs("b", BATCH, 30, per_project=50)

    assert sorted(str(job.project_id) for job in first) == sorted([str(busy)] * 50 + [str(lone)])
    assert [job.project_id for job in second] == [busy] * 50
    # The backlog is taken oldest first, and no job twice.
    assert not {job.job_id for job in first} & {job.job_id for job in second}
    leased = await db.fetchval("select count(*) from reconciler.jobs where lease_owner is not null")
    assert leased == 101
