"""One suite, both transports: the Postgres adapter and the Supabase (PostgREST RPC) adapter
must behave identically on a real database."""

from __future__ import annotations

from uuid import UUID, uuid4

import asyncpg
import pytest

from reconciler.ports import PollOutcome, StoreRejected
from reconciler.store.functions import FunctionStore
from tests.projects import clips_of, new_project, row_version

URL_A = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"
URL_B = "https://vm.runware.ai/video/os/b/ws/2/vi/b.mp4"


async def test_read_project_unknown_is_none(store: FunctionStore) -> None:
    assert await store.read_project(uuid4(), 0) is None


async def test_read_project_tracks_pending_jobs(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": "pending", "j2": URL_A, "j3": "failed"})

    snapshot = await store.read_project(project, 60)

    assert snapshot is not None
    assert snapshot.clips == {"j1": "pending", "j2": URL_A, "j3": "failed"}
    assert set(snapshot.pending_jobs) == {"j1"}
    assert snapshot.pending_jobs["j1"].attempts == 0
    states = await store.job_states(["j1"])
    assert states["j1"].project_id == project
    assert 55 < states["j1"].next_check_in_seconds <= 60


async def test_apply_results_moves_only_pending(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": "pending", "j2": "pending", "j3": URL_A})

    outcome = await store.apply_results(project, {"j1": URL_B, "j3": URL_B, "j2": "failed"})

    assert outcome.found
    assert outcome.changed == {"j1": URL_B, "j2": "failed"}
    assert outcome.clips == {"j1": URL_B, "j2": "failed", "j3": URL_A}
    assert await clips_of(db, project) == outcome.clips


async def test_apply_results_unknown_project(store: FunctionStore) -> None:
    outcome = await store.apply_results(uuid4(), {"j1": URL_A})
    assert not outcome.found
    assert outcome.changed == {}


async def test_apply_results_without_change_does_not_write(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": URL_A, "j2": "pending"})
    before = await row_version(db, project)

    outcome = await store.apply_results(project, {"j1": URL_B, "gone": "failed"})

    assert outcome.changed == {}
    assert await row_version(db, project) == before


@pytest.mark.parametrize(
    "results",
    [
        {"j1": "pending"},
        {"j1": ""},
        {"j1": 42},
        {"j1": None},
        {"j1": {"url": URL_A}},
        {"": URL_A},
    ],
    ids=["pending", "empty", "number", "null", "object", "empty-key"],
)
async def test_apply_results_rejects_bad_input_and_writes_nothing(
    store: FunctionStore, db: asyncpg.Connection, results: dict[str, object]
) -> None:
    project = await new_project(db, {"j1": "pending"})
    before = await row_version(db, project)

    with pytest.raises(StoreRejected):
        await store.apply_results(project, results)  # type: ignore[arg-type]

    assert await row_version(db, project) == before


async def test_read_without_tracking_then_track_only_what_is_still_pending(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": "pending", "j2": "pending", "j3": URL_A})

    snapshot = await store.read_project(project, 0, track=False)
    untracked = await store.job_states(["j1", "j2"])
    await store.track_jobs(project, ["j2", "j3", "not-in-project"], 60)

    assert snapshot is not None
    assert snapshot.pending_jobs == {}
    assert untracked == {}
    assert set(await store.job_states(["j1", "j2", "j3", "not-in-project"])) == {"j2"}


async def test_drain_tracks_what_the_app_added(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"job-x": "pending", "done": URL_A})
    await db.execute(
        'update public.projects set clips = clips || \'{"job-y": "pending"}\' where id = $1',
        project,
    )
    assert await db.fetchval("select count(*) from reconciler.changed_projects") == 2

    drained = await store.drain_changes(100, 0, 0)

    assert (drained.rows, drained.projects, drained.refused) == (2, 1, {})
    states = await store.job_states(["job-x", "job-y", "done"])
    assert set(states) == {"job-x", "job-y"}
    assert {s.project_id for s in states.values()} == {project}
    assert await db.fetchval("select count(*) from reconciler.changed_projects") == 0
    assert (await store.drain_changes(100, 0, 0)).rows == 0


async def test_our_own_writes_leave_no_outbox_row(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": "pending"})
    await store.drain_changes(100, 0, 0)

    await store.apply_results(project, {"j1": URL_A})

    assert await db.fetchval("select count(*) from reconciler.changed_projects") == 0


async def test_ingest_applies_to_the_project_holding_the_job(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"j1": "pending", "j2": "pending"})

    first = await store.ingest_result("j1", URL_A, None, 0)
    again = await store.ingest_result("j1", URL_B, None, 0)

    assert (first.kind, first.project_ids) == ("applied", (project,))
    assert (again.kind, again.project_ids) == ("duplicate", ())
    assert await clips_of(db, project) == {"j1": URL_A, "j2": "pending"}


async def test_ingest_parks_then_read_applies(store: FunctionStore, db: asyncpg.Connection) -> None:
    await store.drain_changes(100, 0, 0)
    parked = await store.ingest_result("early", URL_A, None, 0)
    duplicate = await store.ingest_result("early", URL_B, None, 0)
    project = await new_project(db, {"early": "pending", "other": "pending"})

    snapshot = await store.read_project(project, 0)

    assert parked.kind == "parked"
    assert duplicate.kind == "duplicate"
    assert snapshot is not None
    assert snapshot.applied_parked == {"early": URL_A}
    assert snapshot.clips == {"early": URL_A, "other": "pending"}
    assert set(snapshot.pending_jobs) == {"other"}
    # Kept until retention: another project may get the same job id later.
    assert await db.fetchval("select result from reconciler.parked_results") == URL_A


async def test_ingest_rejects_bad_input(store: FunctionStore, db: asyncpg.Connection) -> None:
    with pytest.raises(StoreRejected):
        await store.ingest_result("j1", "pending", None, 0)
    assert await db.fetchval("select count(*) from reconciler.parked_results") == 0


async def test_claim_record_and_leases(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j1": "pending", "j2": "pending", "j3": "pending"})
    await store.read_project(project, 0)

    mine = await store.claim_due_jobs("replica-a", 2, 30)
    theirs = await store.claim_due_jobs("replica-b", 10, 30)

    assert len(mine) == 2
    assert {j.job_id for j in theirs} == {"j1", "j2", "j3"} - {j.job_id for j in mine}
    assert all(j.project_id == project for j in mine + theirs)
    assert await store.claim_due_jobs("replica-c", 10, 30) == []

    assert await store.renew_leases("replica-a", 60) == 2
    recorded = await store.finish_round(
        "replica-a", [PollOutcome(project, mine[0].job_id, None, "still processing", 120)]
    )
    assert (recorded.rescheduled, recorded.changed, recorded.refused) == (1, {}, {})
    state = (await store.job_states([mine[0].job_id]))[mine[0].job_id]
    assert (state.attempts, state.lease_owner, state.last_error) == (1, None, "still processing")
    assert 115 < state.next_check_in_seconds <= 120

    assert await store.release_leases("replica-b") == 1
    released = theirs[0].job_id
    assert (await store.job_states([released]))[released].lease_owner is None
    again = await store.claim_due_jobs("replica-c", 10, 30)
    assert [j.job_id for j in again] == [released]


async def test_expired_lease_is_taken_over(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j1": "pending"})
    await store.read_project(project, 0)
    assert len(await store.claim_due_jobs("crashed", 10, 30)) == 1
    await db.execute("update reconciler.jobs set lease_expires_at = now() - interval '1 second'")

    taken = await store.claim_due_jobs("survivor", 10, 30)

    assert [j.job_id for j in taken] == ["j1"]
    assert (await store.job_states(["j1"]))["j1"].lease_owner == "survivor"


async def test_settled_jobs_are_not_claimed(store: FunctionStore, db: asyncpg.Connection) -> None:
    project = await new_project(db, {"j1": "pending", "j2": "pending"})
    await store.read_project(project, 0)
    await store.apply_results(project, {"j1": URL_A})

    claimed = await store.claim_due_jobs("r", 10, 30)

    assert [j.job_id for j in claimed] == ["j2"]
    assert (await store.job_states(["j1"]))["j1"].settled


async def test_projects_with_pending_pages_in_id_order(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    with_pending = sorted([await new_project(db, {f"p{i}": "pending"}) for i in range(5)])
    await new_project(db, {"done": URL_A})
    await new_project(db, {})
    await store.drain_changes(100, 0, 0)

    first = await store.projects_with_pending(None, 3)
    rest = await store.projects_with_pending(first[-1], 3)

    assert first + rest == with_pending
    assert await store.projects_with_pending(rest[-1], 3) == []


async def test_ping(store: FunctionStore) -> None:
    await store.ping()


def _ids(values: list[UUID]) -> list[str]:
    return [str(v) for v in values]


async def test_sweep_spread_makes_new_jobs_due_over_a_window(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    """A restart over many untracked jobs must not make them all due at the same instant."""
    jobs = [f"spread-{i}" for i in range(60)]
    project = await new_project(db, dict.fromkeys(jobs, "pending"))

    await store.read_project(project, 10, 100)

    due_in = sorted(s.next_check_in_seconds for s in (await store.job_states(jobs)).values())
    assert due_in[0] > 5
    assert due_in[-1] <= 110
    assert due_in[-1] - due_in[0] > 50  # spread, not bunched


async def test_purge_forgets_only_what_is_past_retention(
    store: FunctionStore, db: asyncpg.Connection
) -> None:
    project = await new_project(db, {"old": "pending", "new": "pending", "open": "pending"})
    await store.read_project(project, 0)
    await store.apply_results(project, {"old": URL_A, "new": URL_B})
    await store.ingest_result("orphan-old", URL_A, None, 0)
    await store.ingest_result("orphan-new", URL_B, None, 0)
    await db.execute(
        "update reconciler.jobs set settled_at = now() - interval '8 days' where job_id = 'old'"
    )
    await db.execute(
        "update reconciler.parked_results set received_at = now() - interval '8 days'"
        " where job_id = 'orphan-old'"
    )

    purged = await store.purge(7 * 86400, 100)

    assert purged == (1, 1)
    assert set(await store.job_states(["old", "new", "open"])) == {"new", "open"}
    parked = await db.fetch("select job_id from reconciler.parked_results")
    assert [r["job_id"] for r in parked] == ["orphan-new"]
    assert await store.purge(7 * 86400, 100) == (0, 0)
