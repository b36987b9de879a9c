"""Item 19: webhooks, drains, a poll round and the app all writing one project at once take
their locks in one order (supabase/migrations/20261208010000_clip_reconciler_lock_order.sql,
docs/architecture.md "Lock order"), so PostgreSQL never has to break a deadlock; and a
statement that still meets one (40P01, 40001) is retried once by the store before anyone
hears "unavailable"."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from reconciler.ports import StoreUnavailable
from reconciler.store.functions import FunctionStore
from reconciler.store.postgres import connect_postgres_store
from tests.projects import new_project
from tests.waiting import wait_until

ROUNDS = 6
WEBHOOKS = 16
APP_WRITERS = 8
DRAINS = 2
POLL_ROUNDS = 1
OWNER = "poller-under-test"


def _url(job_id: str) -> str:
    return f"https://vm.runware.ai/video/{job_id}.mp4"


async def _arrange_round(db: asyncpg.Connection) -> tuple[UUID, list[str], list[str]]:
    """One project with WEBHOOKS pending jobs: half tracked already (drained), half only in
    the outbox (the app's write not drained yet), as when webhooks follow the app's writes
    closely. A few more jobs are tracked, claimed by a poller and answered by its round."""
    webhook_jobs = [str(uuid4()) for _ in range(WEBHOOKS)]
    polled_jobs = [str(uuid4()) for _ in range(4)]
    tracked = dict.fromkeys(webhook_jobs[: WEBHOOKS // 2] + polled_jobs, "pending")
    project = await new_project(db, tracked)
    await db.execute("select public.reconciler_drain_changes(10000, 0, 0)")
    await db.execute(
        "update public.projects set clips = clips || $2::text::jsonb where id = $1",
        project,
        json.dumps(dict.fromkeys(webhook_jobs[WEBHOOKS // 2 :], "pending")),
    )
    await db.execute(
        "update reconciler.jobs set lease_owner = $2, lease_expires_at = now() + interval '1 hour'"
        " where project_id = $1 and job_id = any($3::text[])",
        project,
        OWNER,
        polled_jobs,
    )
    return project, webhook_jobs, polled_jobs


def _poll_outcomes(project: UUID, polled_jobs: list[str]) -> str:
    outcomes: list[dict[str, Any]] = [
        {
            "project_id": str(project),
            "job_id": job,
            "result": _url(job),
            "reason": None,
            "next_check_in_seconds": 5,
            "progress": None,
        }
        for job in polled_jobs[:2]
    ] + [
        {
            "project_id": str(project),
            "job_id": job,
            "result": None,
            "reason": None,
            "next_check_in_seconds": 5,
            "progress": 50,
        }
        for job in polled_jobs[2:]
    ]
    return json.dumps(outcomes)


async def _run_load(
    db: asyncpg.Connection,
    pool: asyncpg.Pool,
    ingest: Callable[[str, str], Awaitable[None]],
    seed: int,
) -> list[BaseException]:
    """ROUNDS rounds of the load; returns every error a call raised."""
    rng = random.Random(seed)
    errors: list[BaseException] = []

    async def app_adds(project: UUID) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "update public.projects set clips = clips || jsonb_build_object($2::text,"
                " 'pending') where id = $1",
                project,
                str(uuid4()),
            )

    async def drain() -> None:
        async with pool.acquire() as conn:
            await conn.execute("select public.reconciler_drain_changes(100, 0, 0)")

    async def poll_round(project: UUID, polled_jobs: list[str]) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "select public.reconciler_finish_poll_round($1, $2::text::jsonb)",
                OWNER,
                _poll_outcomes(project, polled_jobs),
            )

    async def caught(call: Awaitable[None]) -> None:
        try:
            await call
        except (asyncpg.PostgresError, StoreUnavailable) as error:
            errors.append(error)

    for _ in range(ROUNDS):
        project, webhook_jobs, polled_jobs = await _arrange_round(db)
        calls: list[Awaitable[None]] = [
            *(ingest(job, _url(job)) for job in webhook_jobs),
            *(app_adds(project) for _ in range(APP_WRITERS)),
            *(drain() for _ in range(DRAINS)),
            *(poll_round(project, polled_jobs) for _ in range(POLL_ROUNDS)),
        ]
        rng.shuffle(calls)
        await asyncio.gather(*(caught(call) for call in calls))

        if errors:
            continue  # reported by the caller; a failed webhook wrote nothing
        clips = await db.fetchval("select clips from public.projects where id = $1", project)
        for job in webhook_jobs:
            assert clips[job] == _url(job), f"webhook result for {job} not written"
    return errors


async def _deadlocks_counted(db: asyncpg.Connection) -> int:
    """PostgreSQL's own count of deadlocks it broke in this database: what its log reports.
    Counters are flushed when a backend ends, so the load's connections are gone first."""
    await wait_until(lambda: _only_this_connection(db), timeout=60.0)
    await db.execute("select pg_stat_clear_snapshot()")
    count: int = await db.fetchval(
        "select deadlocks from pg_stat_database where datname = current_database()"
    )
    return count


async def _only_this_connection(db: asyncpg.Connection) -> bool:
    others: int = await db.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and pid <> pg_backend_pid()"
    )
    return others == 0


async def test_raw_sql_load_never_deadlocks(database_url: str, db: asyncpg.Connection) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=WEBHOOKS + APP_WRITERS)
    before = await _deadlocks_counted(db)

    async def ingest(job_id: str, url: str) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                "select public.reconciler_ingest_result($1, $2, null, 0)", job_id, url
            )

    try:
        errors = await _run_load(db, pool, ingest, seed=19)
    finally:
        await pool.close()
    deadlocks = await _deadlocks_counted(db) - before

    assert ([f"{getattr(e, 'sqlstate', '')}: {e}" for e in errors], deadlocks) == ([], 0)


async def test_webhooks_through_the_store_never_answer_unavailable(
    database_url: str, db: asyncpg.Connection
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=0, max_size=APP_WRITERS + DRAINS + 1)
    before = await _deadlocks_counted(db)
    store: FunctionStore = await connect_postgres_store(database_url, max_size=WEBHOOKS)

    async def ingest(job_id: str, url: str) -> None:
        # What the webhook route awaits before it answers: StoreUnavailable would be a 503.
        await store.ingest_result(job_id, url, None, 0)

    try:
        errors = await _run_load(db, pool, ingest, seed=1919)
    finally:
        await store.close()
        await pool.close()
    deadlocks = await _deadlocks_counted(db) - before

    assert ([str(e) for e in errors], deadlocks) == ([], 0)


async def _waits_for_a_lock(db: asyncpg.Connection, pid: int | None = None) -> bool:
    """Whether a backend in this database (pid, or any but ours) is waiting for a lock."""
    waiting: int = await db.fetchval(
        "select count(*) from pg_stat_activity where datname = current_database()"
        " and wait_event_type = 'Lock' and pid <> pg_backend_pid()"
        " and ($1::integer is null or pid = $1)",
        pid,
    )
    return waiting > 0


async def test_a_webhook_that_meets_a_deadlock_is_stored_by_its_second_run(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A real 40P01, arranged so that the webhook's call is the one PostgreSQL cancels (the
    other side never runs the deadlock check): the store runs it once more and it is stored."""
    job = str(uuid4())
    project = await new_project(db, {job: "pending"})
    await db.execute("select public.reconciler_drain_changes(100, 0, 0)")
    before = await _deadlocks_counted(db)
    holder = await asyncpg.connect(database_url)  # holds the job's kept result for a while
    other = await asyncpg.connect(database_url)  # holds the project, then wants the job's slot
    store = await connect_postgres_store(database_url, max_size=2)
    try:
        holder_tx = holder.transaction()
        await holder_tx.start()
        await holder.execute(
            "insert into reconciler.parked_results (job_id, result) values ($1, $2)",
            job,
            _url(job),
        )
        # The webhook takes the job's slot, then waits for the holder's kept result.
        webhook = asyncio.create_task(store.ingest_result(job, _url(job), None, 0))
        await wait_until(lambda: _waits_for_a_lock(db))

        other_tx = other.transaction()
        await other_tx.start()
        await other.execute("set local deadlock_timeout = '1h'")
        await other.execute("select 1 from public.projects where id = $1 for update", project)
        other_pid = other.get_server_pid()
        wants_slot = asyncio.create_task(
            other.execute(
                "select pg_advisory_xact_lock(hashtext('reconciler.ingest_result'), hashtext($1))",
                job,
            )
        )
        await wait_until(lambda: _waits_for_a_lock(db, other_pid))

        # The webhook now waits for the project while holding the slot `other` waits for.
        await holder_tx.rollback()
        await wants_slot
        await other_tx.rollback()
        outcome = await webhook
    finally:
        await store.close()
        await holder.close()
        await other.close()

    assert (outcome.kind.value, [str(p) for p in outcome.project_ids]) == (
        "applied",
        [str(project)],
    )
    clips = await db.fetchval("select clips from public.projects where id = $1", project)
    assert clips[job] == _url(job)
    assert await _deadlocks_counted(db) - before == 1


LOWER = UUID("00000000-0000-4000-8000-000000000001")
HIGHER = UUID("00000000-0000-4000-8000-000000000002")


async def test_a_holder_that_would_be_locked_backwards_is_left_to_the_next_drain(
    database_url: str, db: asyncpg.Connection
) -> None:
    """A webhook's drain holds HIGHER when the job turns out to be held by LOWER too (another
    drain tracked it meanwhile). Waiting for LOWER now would take project locks backwards: it is
    taken only if free; busy, LOWER goes back to the outbox and the next drain applies the kept
    result there."""
    job = str(uuid4())
    for project in (LOWER, HIGHER):
        await db.execute(
            "insert into public.projects (id, clips) values ($1, $2::text::jsonb)",
            project,
            json.dumps({job: "pending"}),
        )
    engine_drain = await asyncpg.connect(database_url)  # took LOWER's outbox row, tracks it
    app = await asyncpg.connect(database_url)  # the app, in the middle of a write to LOWER
    store = await connect_postgres_store(database_url, max_size=1)
    try:
        drain_tx = engine_drain.transaction()
        await drain_tx.start()
        await engine_drain.execute(
            "delete from reconciler.changed_projects where project_id = $1", LOWER
        )
        await engine_drain.execute(
            "insert into reconciler.jobs (project_id, job_id, next_check_at)"
            " values ($1, $2, now())",
            LOWER,
            job,
        )
        app_tx = app.transaction()
        await app_tx.start()
        await app.execute("select 1 from public.projects where id = $1 for update", LOWER)

        webhook = asyncio.create_task(store.ingest_result(job, _url(job), None, 0))
        # It sees no holder yet, so it drains, and waits for the row the engine's drain took.
        await wait_until(lambda: _waits_for_a_lock(db))
        await drain_tx.commit()
        # Bounds a failure only: taking LOWER backwards would wait for the app for ever.
        async with asyncio.timeout(60):
            outcome = await webhook

        assert (outcome.kind.value, outcome.project_ids) == ("applied", (HIGHER,))
        waiting = await db.fetch("select project_id from reconciler.changed_projects")
        assert [row["project_id"] for row in waiting] == [LOWER]
        await app_tx.rollback()
        drained = await store.drain_changes(100, 0, 0)
    finally:
        await store.close()
        await engine_drain.close()
        await app.close()

    assert (drained.rows, drained.refused) == (1, {})
    for project in (LOWER, HIGHER):
        clips = await db.fetchval("select clips from public.projects where id = $1", project)
        assert clips == {job: _url(job)}
