"""The operator's reads and the replicas' heartbeats, on both transports: what `reconciler
status` and `GET /admin` show comes from these calls, read from a real database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import asyncpg
import pytest

from reconciler.operator.views import read_overview, read_project_view
from reconciler.ports import PollOutcome, ReplicaHeartbeat, StoreRejected
from reconciler.store.functions import FunctionStore
from tests.job_ids import J
from tests.projects import clips_of, tracked_project

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"


def beat(owner: str, *, interval: float = 5.0, feed: str = "subscribed") -> ReplicaHeartbeat:
    return ReplicaHeartbeat(
        owner=owner,
        version="1.2.3",
        started_at=datetime(2026, 12, 2, 9, 0, tzinfo=UTC),
        interval_seconds=interval,
        feed_state=feed,
        leases_held=3,
        last_sweep_at=None,
    )


async def age_job(db: asyncpg.Connection, job_id: str, seconds: float) -> None:
    await db.execute(
        "update reconciler.jobs set first_seen_at = now() - make_interval(secs => $2)"
        " where job_id = $1",
        job_id,
        seconds,
    )


async def test_an_empty_installation_has_nothing_to_show(store: FunctionStore) -> None:
    overview = await read_overview(store)

    assert overview.replicas == []
    assert [(b.label, b.count) for b in overview.age_buckets] == [
        ("<1m", 0),
        ("1-10m", 0),
        ("10-60m", 0),
        ("1-6h", 0),
        (">6h", 0),
    ]
    assert overview.oldest == []
    assert overview.failures_24h == []
    assert overview.failure_reasons_24h == []
    assert overview.parked_results == 0
    assert overview.archive_backlog is None
    assert overview.as_json()["unsettled"] == 0


async def test_stuck_jobs_are_listed_oldest_first_with_their_last_check(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await tracked_project(
        db, {J.fresh: "pending", J.hour: "pending", J.day: "pending", J.done: URL}
    )
    await age_job(db, J.hour, 2 * 3600)
    await age_job(db, J.day, 26 * 3600)
    # A check that found the job still working: its progress and reason are kept.
    await store.finish_round(
        "replica-a",
        [PollOutcome(project, J.hour, None, "Runware: still processing", 30.0, progress=60)],
    )

    # A later check that brings no figure (ours failed) keeps the last report.
    await store.finish_round(
        "replica-a", [PollOutcome(project, J.hour, None, "Runware: still processing", 30.0)]
    )

    overview = await read_overview(store, oldest_limit=2)

    assert {b.label: b.count for b in overview.age_buckets} == {
        "<1m": 1,
        "1-10m": 0,
        "10-60m": 0,
        "1-6h": 1,
        ">6h": 1,
    }
    assert overview.unsettled == 3
    assert [job.job_id for job in overview.oldest] == [J.day, J.hour]
    hour = overview.oldest[1]
    assert hour.project_id == project
    assert hour.attempts == 2
    assert hour.last_error == "Runware: still processing"
    assert hour.progress == 60
    assert hour.next_check_at > hour.first_seen_at
    assert overview.oldest[0].progress is None


async def test_failures_of_the_last_day_name_their_reasons(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await tracked_project(db, {J.named(f"j{i}"): "pending" for i in range(4)})
    await store.finish_round(
        "replica-a",
        [
            PollOutcome(project, J.j0, "failed", "gave up after 3601 s without a result", 0),
            PollOutcome(project, J.j1, "failed", "gave up after 3723 s without a result", 0),
            PollOutcome(project, J.j2, "failed", "Runware: content policy", 0),
            PollOutcome(project, J.j3, "failed", "Runware: from two days ago", 0),
        ],
    )
    await db.execute(
        "update reconciler.jobs set settled_at = now() - interval '2 days' where job_id = $1",
        J.j3,
    )

    overview = await read_overview(store)

    assert {f.job_id for f in overview.failures_24h} == {J.j0, J.j1, J.j2}
    assert {f.job_id: f.reason for f in overview.failures_24h}[J.j2] == "Runware: content policy"
    assert all(f.project_id == project for f in overview.failures_24h)
    assert overview.failure_reasons_24h == [
        ("gave up after N s without a result", 2),
        ("Runware: content policy", 1),
    ]
    assert overview.unsettled == 0


async def test_parked_results_are_counted(store: FunctionStore) -> None:
    await store.ingest_result(J.nobody_has_this_job, URL, None, 0)
    await store.ingest_result(J.nor_this_one, "failed", "boom", 0)

    assert (await read_overview(store)).parked_results == 2


async def test_only_results_whose_job_is_in_no_project_are_parked(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    # Five webhooks applied to the project holding their job (their results are kept until
    # retention all the same) and one for a job no project holds: one result is parked.
    applied = [J.named(f"applied{i}") for i in range(5)]
    project = await tracked_project(db, dict.fromkeys(applied, "pending"))
    for job_id in applied:
        await store.ingest_result(job_id, URL, None, 0)
    await store.ingest_result(J.unknown_to_every_project, URL, None, 0)

    overview = await read_overview(store)

    assert await db.fetchval("select count(*) from reconciler.parked_results") == 6
    assert (await clips_of(db, project)) == dict.fromkeys(applied, URL)
    assert overview.parked_results == 1
    assert overview.as_json()["parked_results"] == 1


async def test_heartbeats_list_every_replica_with_its_feed(store: FunctionStore) -> None:
    await store.record_heartbeat(beat("replica-b", feed="reconnecting"))
    await store.record_heartbeat(beat("replica-a"))
    await store.record_heartbeat(beat("replica-a"))  # an upsert, not a second row

    replicas = (await read_overview(store)).replicas

    assert [(r.owner, r.feed_state, r.alive) for r in replicas] == [
        ("replica-a", "subscribed", True),
        ("replica-b", "reconnecting", True),
    ]
    assert replicas[0].leases_held == 3
    assert replicas[0].version == "1.2.3"
    assert replicas[0].started_at == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


async def test_a_silent_replica_is_shown_dead_then_forgotten(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    for owner in ("silent", "gone", "live"):
        await store.record_heartbeat(beat(owner, interval=5))
    # Missed a few beats: dead. Missed very many: forgotten at the next beat of anyone.
    await db.execute(
        "update reconciler.replicas set last_seen_at = now() - interval '30 seconds'"
        " where owner = 'silent'"
    )
    await db.execute(
        "update reconciler.replicas set last_seen_at = now() - interval '2 hours'"
        " where owner = 'gone'"
    )
    await store.record_heartbeat(beat("live", interval=5))

    replicas = (await read_overview(store)).replicas

    assert [(r.owner, r.alive) for r in replicas] == [("live", True), ("silent", False)]


async def test_a_replica_that_stops_cleanly_removes_its_row(store: FunctionStore) -> None:
    await store.record_heartbeat(beat("leaving"))
    await store.forget_replica("leaving")

    assert (await read_overview(store)).replicas == []


@pytest.mark.parametrize(
    "bad",
    [
        beat(""),
        beat("x" * 201),
        beat("replica", interval=0),
        beat("replica", interval=-1),
        beat("replica", interval=100_000),
    ],
)
async def test_a_malformed_heartbeat_is_refused_and_writes_nothing(
    store: FunctionStore, bad: ReplicaHeartbeat
) -> None:
    with pytest.raises(StoreRejected):
        await store.record_heartbeat(bad)
    assert (await read_overview(store)).replicas == []


async def test_the_project_view_shows_every_clip_with_its_job(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await tracked_project(
        db, {J.waiting: "pending", J.done: URL, J.bad: "failed", J.odd: {"x": 1}}
    )
    await store.finish_round(
        "replica-a", [PollOutcome(project, J.waiting, None, "Runware: queued", 60, progress=5)]
    )

    view = await read_project_view(store, project)

    assert view is not None
    assert view.project_id == project
    clips = {clip.job_id: clip for clip in view.clips}
    assert {job: clip.status for job, clip in clips.items()} == {
        J.waiting: "pending",
        J.done: "completed",
        J.bad: "failed",
        J.odd: "unknown",
    }
    waiting = clips[J.waiting]
    assert (waiting.attempts, waiting.last_error, waiting.progress) == (1, "Runware: queued", 5)
    assert waiting.next_check_at is not None
    assert waiting.next_check_at > datetime.now(UTC) + timedelta(seconds=30)
    assert clips[J.done].value == URL
    assert clips[J.done].attempts is None
    # Once settled, Runware's old percentage is no longer shown.
    await store.apply_results(project, {J.waiting: URL})
    settled = await read_project_view(store, project)
    assert settled is not None
    assert {clip.job_id: clip.progress for clip in settled.clips}[J.waiting] is None
    assert clips[J.odd].value == {"x": 1}
    # In key order.
    assert [c["job_id"] for c in view.as_json()["clips"]] == sorted(
        [J.waiting, J.done, J.bad, J.odd]
    )


async def test_the_project_view_of_an_unknown_project_is_none(store: FunctionStore) -> None:
    assert await read_project_view(store, uuid4()) is None


@pytest.mark.parametrize("clips_json", ["null", "[]", '"pending"'])
async def test_a_project_whose_clips_are_not_a_map_has_no_clips(
    store: FunctionStore, db: asyncpg.Connection, clips_json: str
) -> None:
    project = uuid4()
    await db.execute(
        "insert into public.projects (id, clips) values ($1, $2::text::jsonb)", project, clips_json
    )

    view = await read_project_view(store, project)

    assert view is not None
    assert view.clips == []


async def test_the_overview_never_reads_projects(
    store: FunctionStore, db: asyncpg.Connection, database_url: str
) -> None:
    """I10: the overview walks our own rows only. Proof: it answers while `projects` is held
    under an exclusive lock, which any read of that table would wait for."""
    await tracked_project(db, {J.j: "pending"})
    locker = await asyncpg.connect(database_url)
    try:
        async with locker.transaction():
            await locker.execute("lock table public.projects in access exclusive mode")
            # The bound only keeps a regression from hanging the suite.
            overview = await asyncio.wait_for(read_overview(store), timeout=60)
    finally:
        await locker.close()
    assert overview.unsettled == 1


async def test_the_age_counts_follow_every_way_a_job_settles_or_returns(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """The buckets are kept as per-minute deltas by triggers on the jobs table, not counted at
    read time: they must match the rows after tracking, settling, re-tracking, deleting and
    folding, whichever path wrote them."""

    async def counted_by_rows() -> int:
        count: int = await db.fetchval(
            "select count(*) from reconciler.jobs where settled_at is null"
        )
        return count

    first = await tracked_project(db, {J.named(f"a{i}"): "pending" for i in range(5)})
    second = await tracked_project(db, {J.b0: "pending", J.b1: "pending"})
    await age_job(db, J.a0, 3 * 3600)
    assert (await read_overview(store)).unsettled == await counted_by_rows() == 7

    await store.apply_results(first, {J.a1: URL, J.a2: "failed"})  # settled by the merge
    await store.finish_round("r", [PollOutcome(first, J.a3, None, "still working", 5)])
    await db.execute(  # the app resets a settled clip: tracked afresh
        "update public.projects set clips = clips || jsonb_build_object($2::text, 'pending')"
        " where id = $1",
        first,
        J.a1,
    )
    await db.execute("select public.reconciler_drain_changes(100, 0, 0)")
    await db.execute("delete from public.projects where id = $1", second)
    await db.execute("select public.reconciler_drain_changes(100, 0, 0)")
    await db.execute("delete from reconciler.jobs where job_id = $1", J.a4)

    before_fold = await read_overview(store)
    await store.record_heartbeat(beat("folder"))  # folds the deltas
    after_fold = await read_overview(store)
    minute_rows = await db.fetchval(
        "select count(*) = count(distinct minute) from reconciler.unsettled_by_minute"
    )

    expected = await counted_by_rows()
    assert before_fold.unsettled == after_fold.unsettled == expected
    assert before_fold.age_buckets == after_fold.age_buckets
    assert {b.label: b.count for b in after_fold.age_buckets}["1-6h"] == 1
    assert minute_rows is True


async def test_with_archiving_on_the_views_show_the_backlog_and_each_clips_archive_state(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    assert (await read_overview(store)).archive_backlog is None  # off: not reported
    await store.set_archiving(True)
    project = await tracked_project(db, {J.done: "pending", J.waiting: "pending"})
    await store.apply_results(project, {J.done: URL})  # queued for archiving, same statement

    overview = await read_overview(store)
    view = await read_project_view(store, project)

    assert overview.archive_backlog == 1
    assert overview.as_json()["archive_backlog"] == 1
    assert view is not None
    states = {clip.job_id: clip.archive_state for clip in view.clips}
    assert states == {J.done: "queued", J.waiting: None}
    [task] = await store.claim_archive_tasks("op-test", 10, 60, 5)
    await store.archive_failed(task, "gone", permanent=True, retry_in_seconds=0, max_attempts=5)
    view = await read_project_view(store, project)
    assert view is not None
    assert {c.job_id: c.archive_state for c in view.clips}[J.done] == "given_up"
    assert (await read_overview(store)).archive_backlog == 0
