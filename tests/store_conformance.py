"""One suite, every `Store`: the in-memory fake (tests/unit) and the Postgres and Supabase
(PostgREST RPC) adapters on a real database (tests/integration) must behave identically.

A tier runs it by subclassing `StoreConformance` in a `test_*.py` module and providing a
`harness` fixture: the store under test plus the app's side of `public.projects` and a way to
look at (and age) what the store keeps — SQL for PostgreSQL, the dicts for the fake. The store
itself has no such methods: nothing in production reads its state that way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

import asyncpg
import pytest

from reconciler.callers import UserCaller
from reconciler.clips import over_limit_reason, untrackable_reason
from reconciler.ports import PendingStats, PollOutcome, Store, StoreRejected
from tests.fakes.memory_store import MemoryStore
from tests.job_ids import J
from tests.projects import clips_of, new_project, row_version
from tests.standins.postgrest import make_key

URL_A = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"
URL_B = "https://vm.runware.ai/video/os/b/ws/2/vi/b.mp4"


@dataclass(frozen=True)
class JobView:
    """A tracked (project, job) as the store keeps it."""

    project_id: UUID
    attempts: int
    next_check_in_seconds: float
    lease_owner: str | None
    last_error: str | None
    settled: bool
    outcome: str | None


class StoreHarness(Protocol):
    @property
    def store(self) -> Store: ...

    async def new_project(
        self, clips: Any, *, triggers: bool = True, owner: str | None = None
    ) -> UUID:
        """The app inserts a project (`triggers=False`: a write our trigger never sees), owned
        by the user `owner` (a uuid) for the app's row-level security."""
        ...

    async def add_clips(self, project_id: UUID, clips: dict[str, Any]) -> None:
        """The app merges keys into a project's clips in one statement."""
        ...

    async def delete_project(self, project_id: UUID) -> None: ...

    async def refuse_writes(self, project_id: UUID, message: str) -> None:
        """From now on every write of this project fails (an app trigger that raises)."""
        ...

    async def clips_of(self, project_id: UUID) -> Any: ...

    async def row_version(self, project_id: UUID) -> str:
        """Changes with every write of the project's row, and only then."""
        ...

    async def outbox_rows(self) -> int: ...

    async def parked_results(self) -> dict[str, str]: ...

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        """Tracked rows of these job ids, settled ones too (one project per job id here)."""
        ...

    async def expire_leases(self) -> None: ...

    async def backdate_settled(self, job_id: str, seconds: float) -> None: ...

    async def backdate_parked(self, job_id: str, seconds: float) -> None: ...

    async def backdate_due(self, job_ids: Sequence[str], seconds: float) -> None:
        """Make these jobs due `seconds` ago (a backlog of overdue checks)."""
        ...

    async def untracked_reasons(self, project_id: UUID) -> dict[str, str]:
        """Pending clips recorded as not tracked: {first 64 characters of the key: reason}."""
        ...


# --- The harnesses --------------------------------------------------------------------------------


class PostgresHarness:
    """A store over a real database; `db` is a superuser connection (the app's side)."""

    def __init__(self, store: Store, db: asyncpg.Connection) -> None:
        self._store = store
        self._db = db

    @property
    def store(self) -> Store:
        return self._store

    async def new_project(
        self, clips: Any, *, triggers: bool = True, owner: str | None = None
    ) -> UUID:
        if owner is not None:
            project_id = uuid4()
            await self._db.execute(
                "insert into public.projects (id, name, clips, user_id) values ($1, '', $2, $3)",
                project_id,
                clips,
                UUID(owner),
            )
            return project_id
        if triggers:
            return await new_project(self._db, clips)
        async with self._db.transaction():
            await self._db.execute("set local session_replication_role = replica")
            return await new_project(self._db, clips)

    async def add_clips(self, project_id: UUID, clips: dict[str, Any]) -> None:
        await self._db.execute(
            "update public.projects set clips = clips || $2 where id = $1", project_id, clips
        )

    async def delete_project(self, project_id: UUID) -> None:
        await self._db.execute("delete from public.projects where id = $1", project_id)

    async def refuse_writes(self, project_id: UUID, message: str) -> None:
        name = f"refuse_{project_id.hex}"
        await self._db.execute(
            f"""
            create function public.{name}() returns trigger
            language plpgsql set search_path = '' as $$
            begin raise exception '{message}'; end $$;
            create trigger {name} before update on public.projects
                for each row when (old.id = '{project_id}')
                execute function public.{name}();
            """
        )

    async def clips_of(self, project_id: UUID) -> Any:
        return await clips_of(self._db, project_id)

    async def row_version(self, project_id: UUID) -> str:
        return await row_version(self._db, project_id)

    async def outbox_rows(self) -> int:
        count: int = await self._db.fetchval("select count(*) from reconciler.changed_projects")
        return count

    async def parked_results(self) -> dict[str, str]:
        rows = await self._db.fetch("select job_id, result from reconciler.parked_results")
        return {row["job_id"]: row["result"] for row in rows}

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        rows = await self._db.fetch(
            "select job_id, project_id, attempts, lease_owner, last_error, outcome,"
            " settled_at is not null as settled,"
            " extract(epoch from next_check_at - now())::float8 as next_check_in_seconds"
            " from reconciler.jobs where job_id = any($1::text[])",
            list(job_ids),
        )
        return {
            row["job_id"]: JobView(
                project_id=row["project_id"],
                attempts=row["attempts"],
                next_check_in_seconds=row["next_check_in_seconds"],
                lease_owner=row["lease_owner"],
                last_error=row["last_error"],
                settled=row["settled"],
                outcome=row["outcome"],
            )
            for row in rows
        }

    async def expire_leases(self) -> None:
        await self._db.execute(
            "update reconciler.jobs set lease_expires_at = now() - interval '1 second'"
            " where lease_expires_at is not null"
        )

    async def backdate_settled(self, job_id: str, seconds: float) -> None:
        await self._db.execute(
            "update reconciler.jobs set settled_at = now() - make_interval(secs => $2)"
            " where job_id = $1",
            job_id,
            seconds,
        )

    async def backdate_parked(self, job_id: str, seconds: float) -> None:
        await self._db.execute(
            "update reconciler.parked_results set received_at = now() - make_interval(secs => $2)"
            " where job_id = $1",
            job_id,
            seconds,
        )

    async def backdate_due(self, job_ids: Sequence[str], seconds: float) -> None:
        await self._db.execute(
            "update reconciler.jobs set next_check_at = now() - make_interval(secs => $2)"
            " where job_id = any($1::text[])",
            list(job_ids),
            seconds,
        )

    async def untracked_reasons(self, project_id: UUID) -> dict[str, str]:
        rows = await self._db.fetch(
            "select key_prefix, last_error from reconciler.untrackable_clips where project_id = $1",
            project_id,
        )
        return {row["key_prefix"]: row["last_error"] for row in rows}


class MemoryHarness:
    """The in-memory store, looked at through its dicts."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    @property
    def store(self) -> Store:
        return self._store

    def _now(self) -> float:
        return self._store._clock.now()

    async def new_project(
        self, clips: Any, *, triggers: bool = True, owner: str | None = None
    ) -> UUID:
        return self._store.app.insert(clips, triggers=triggers, owner=owner)

    async def add_clips(self, project_id: UUID, clips: dict[str, Any]) -> None:
        self._store.app.merge(project_id, clips)

    async def delete_project(self, project_id: UUID) -> None:
        self._store.app.delete(project_id)

    async def refuse_writes(self, project_id: UUID, message: str) -> None:
        self._store.refuse_writes(project_id, message)

    async def clips_of(self, project_id: UUID) -> Any:
        return self._store.app.clips(project_id)

    async def row_version(self, project_id: UUID) -> str:
        return str(self._store.app.version(project_id))

    async def outbox_rows(self) -> int:
        return len(self._store.state.outbox)

    async def parked_results(self) -> dict[str, str]:
        return {job_id: row.result for job_id, row in self._store.state.parked.items()}

    async def job_states(self, job_ids: Sequence[str]) -> dict[str, JobView]:
        now = self._now()
        return {
            row.job_id: JobView(
                project_id=row.project_id,
                attempts=row.attempts,
                next_check_in_seconds=row.next_check_at - now,
                lease_owner=row.lease_owner,
                last_error=row.last_error,
                settled=row.settled_at is not None,
                outcome=row.outcome,
            )
            for row in self._store.state.jobs.values()
            if row.job_id in job_ids
        }

    async def expire_leases(self) -> None:
        for row in self._store.state.jobs.values():
            if row.lease_expires_at is not None:
                row.lease_expires_at = self._now() - 1

    async def backdate_settled(self, job_id: str, seconds: float) -> None:
        for row in self._store.state.jobs.values():
            if row.job_id == job_id:
                row.settled_at = self._now() - seconds

    async def backdate_parked(self, job_id: str, seconds: float) -> None:
        self._store.state.parked[job_id].received_at = self._now() - seconds

    async def backdate_due(self, job_ids: Sequence[str], seconds: float) -> None:
        for row in self._store.state.jobs.values():
            if row.job_id in job_ids:
                row.next_check_at = self._now() - seconds

    async def untracked_reasons(self, project_id: UUID) -> dict[str, str]:
        return {
            row.key_prefix: row.last_error
            for (project, _), row in self._store.state.untrackable.items()
            if project == project_id
        }


# --- The suite ------------------------------------------------------------------------------------


class StoreConformance:
    """Subclass as `Test…Conformance` beside a `harness` fixture."""

    async def test_read_project_unknown_is_none(self, harness: StoreHarness) -> None:
        assert await harness.store.sync_project(uuid4(), 0) is None

    async def test_read_project_tracks_pending_jobs(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: URL_A, J.j3: "failed"})

        snapshot = await harness.store.sync_project(project, 60)

        assert snapshot is not None
        assert snapshot.clips == {J.j1: "pending", J.j2: URL_A, J.j3: "failed"}
        assert set(snapshot.pending_jobs) == {J.j1}
        assert snapshot.pending_jobs[J.j1].attempts == 0
        states = await harness.job_states([J.j1])
        assert states[J.j1].project_id == project
        assert 55 < states[J.j1].next_check_in_seconds <= 60

    async def test_apply_results_moves_only_pending(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: "pending", J.j3: URL_A})

        outcome = await harness.store.apply_results(
            project, {J.j1: URL_B, J.j3: URL_B, J.j2: "failed"}
        )

        assert outcome.found
        assert outcome.changed == {J.j1: URL_B, J.j2: "failed"}
        assert outcome.clips == {J.j1: URL_B, J.j2: "failed", J.j3: URL_A}
        assert await harness.clips_of(project) == outcome.clips

    async def test_apply_results_unknown_project(self, harness: StoreHarness) -> None:
        outcome = await harness.store.apply_results(uuid4(), {J.j1: URL_A})
        assert not outcome.found
        assert outcome.changed == {}

    async def test_apply_results_without_change_does_not_write(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: URL_A, J.j2: "pending"})
        before = await harness.row_version(project)

        outcome = await harness.store.apply_results(project, {J.j1: URL_B, J.gone: "failed"})

        assert outcome.changed == {}
        assert await harness.row_version(project) == before

    @pytest.mark.parametrize(
        "results",
        [
            {J.j1: "pending"},
            {J.j1: ""},
            {J.j1: 42},
            {J.j1: None},
            {J.j1: {"url": URL_A}},
            {"": URL_A},
        ],
        ids=["pending", "empty", "number", "null", "object", "empty-key"],
    )
    async def test_apply_results_rejects_bad_input_and_writes_nothing(
        self, harness: StoreHarness, results: dict[str, object]
    ) -> None:
        project = await harness.new_project({J.j1: "pending"})
        before = await harness.row_version(project)

        with pytest.raises(StoreRejected):
            await harness.store.apply_results(project, results)  # type: ignore[arg-type]

        assert await harness.row_version(project) == before

    async def test_read_without_tracking_then_track_only_what_is_still_pending(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: "pending", J.j3: URL_A})

        snapshot = await harness.store.sync_project(project, 0, track=False)
        untracked = await harness.job_states([J.j1, J.j2])
        await harness.store.track_jobs(project, [J.j2, J.j3, J.not_in_project], 60)

        assert snapshot is not None
        assert snapshot.pending_jobs == {}
        assert untracked == {}
        assert set(await harness.job_states([J.j1, J.j2, J.j3, J.not_in_project])) == {J.j2}

    async def test_check_read_of_an_unknown_project_is_none(self, harness: StoreHarness) -> None:
        assert await harness.store.read_for_check(uuid4(), 0, 10, 1000) is None
        written = await harness.store.apply_check_results(uuid4(), {}, [], 1000)
        assert not written.found

    async def test_check_read_asks_at_most_max_jobs_and_tracks_the_rest(
        self, harness: StoreHarness
    ) -> None:
        jobs = sorted(str(uuid4()) for _ in range(5))
        done = str(uuid4())
        project = await harness.new_project(dict.fromkeys(jobs, "pending") | {done: URL_A})

        read = await harness.store.read_for_check(project, 60, 2, None)

        assert read is not None
        # None tracked yet: in key order, no age.
        assert read.asked == dict.fromkeys(jobs[:2])
        assert read.more_pending == 3
        assert (read.counts.total, read.counts.completed, read.counts.pending) == (6, 1, 5)
        assert read.counts.failed == 0
        assert read.clips == dict.fromkeys(jobs, "pending") | {done: URL_A}
        # The jobs not asked about are tracked for the poller (and, here, the others too).
        assert set(await harness.job_states(jobs)) == set(jobs)

    async def test_check_read_without_a_cap_asks_about_every_job_and_tracks_none(
        self, harness: StoreHarness
    ) -> None:
        jobs = [str(uuid4()) for _ in range(3)]
        project = await harness.new_project(dict.fromkeys(jobs, "pending"))

        read = await harness.store.read_for_check(project, 60, None, None)

        assert read is not None
        assert set(read.asked) == set(jobs)
        assert read.more_pending == 0
        assert await harness.job_states(jobs) == {}

    async def test_check_read_leaves_out_clips_over_the_cap(self, harness: StoreHarness) -> None:
        clips = {str(uuid4()): URL_A for _ in range(20)} | {str(uuid4()): "pending"}
        project = await harness.new_project(clips)
        size = len(json.dumps(clips).encode())

        small = await harness.store.read_for_check(project, 0, 10, size)
        large = await harness.store.read_for_check(project, 0, 10, size - 1)

        assert small is not None
        assert small.clips == clips
        assert large is not None
        assert large.clips is None
        assert large.counts == small.counts
        assert large.asked.keys() == small.asked.keys()

    async def test_check_read_and_write_refuse_negative_caps(self, harness: StoreHarness) -> None:
        job = str(uuid4())
        project = await harness.new_project({job: "pending"})

        with pytest.raises(StoreRejected):
            await harness.store.read_for_check(project, 0, -1, None)
        with pytest.raises(StoreRejected):
            await harness.store.read_for_check(project, 0, None, -1)
        with pytest.raises(StoreRejected):
            await harness.store.apply_check_results(project, {job: URL_A}, [job], -1)

        assert await harness.clips_of(project) == {job: "pending"}
        assert await harness.job_states([job]) == {}

    async def test_check_write_answers_the_asked_values_and_counts(
        self, harness: StoreHarness
    ) -> None:
        settles, stays = str(uuid4()), str(uuid4())
        clips = {settles: "pending", stays: "pending"} | {str(uuid4()): "failed" for _ in range(9)}
        project = await harness.new_project(clips)

        written = await harness.store.apply_check_results(
            project, {settles: URL_B}, [settles, stays], 10
        )

        assert written.found
        assert written.changed == {settles: URL_B}
        assert written.values == {settles: URL_B, stays: "pending"}
        assert (written.counts.total, written.counts.completed) == (11, 1)
        assert (written.counts.pending, written.counts.failed) == (1, 9)
        assert written.clips is None
        assert (await harness.clips_of(project))[settles] == URL_B

    async def test_drain_tracks_what_the_app_added(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.job_x: "pending", J.done: URL_A})
        await harness.add_clips(project, {J.job_y: "pending"})
        assert await harness.outbox_rows() == 2

        drained = await harness.store.drain_changes(100, 0, 0)

        assert (drained.rows, drained.projects, drained.refused) == (2, 1, {})
        states = await harness.job_states([J.job_x, J.job_y, J.done])
        assert set(states) == {J.job_x, J.job_y}
        assert {s.project_id for s in states.values()} == {project}
        assert await harness.outbox_rows() == 0
        assert (await harness.store.drain_changes(100, 0, 0)).rows == 0

    async def test_our_own_writes_leave_no_outbox_row(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.drain_changes(100, 0, 0)

        await harness.store.apply_results(project, {J.j1: URL_A})

        assert await harness.outbox_rows() == 0

    async def test_ingest_applies_to_the_project_holding_the_job(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: "pending"})

        first = await harness.store.ingest_result(J.j1, URL_A, None, 0)
        again = await harness.store.ingest_result(J.j1, URL_B, None, 0)

        assert (first.kind, first.project_ids) == ("applied", (project,))
        assert (again.kind, again.project_ids) == ("duplicate", ())
        assert await harness.clips_of(project) == {J.j1: URL_A, J.j2: "pending"}

    async def test_ingest_parks_then_read_applies(self, harness: StoreHarness) -> None:
        await harness.store.drain_changes(100, 0, 0)
        parked = await harness.store.ingest_result(J.early, URL_A, None, 0)
        duplicate = await harness.store.ingest_result(J.early, URL_B, None, 0)
        project = await harness.new_project({J.early: "pending", J.other: "pending"})

        snapshot = await harness.store.sync_project(project, 0)

        assert parked.kind == "parked"
        assert duplicate.kind == "duplicate"
        assert snapshot is not None
        assert snapshot.applied_parked == {J.early: URL_A}
        assert snapshot.clips == {J.early: URL_A, J.other: "pending"}
        assert set(snapshot.pending_jobs) == {J.other}
        # Kept until retention: another project may get the same job id later.
        assert await harness.parked_results() == {J.early: URL_A}

    async def test_ingest_rejects_bad_input(self, harness: StoreHarness) -> None:
        with pytest.raises(StoreRejected):
            await harness.store.ingest_result(J.j1, "pending", None, 0)
        assert await harness.parked_results() == {}

    async def test_claim_record_and_leases(self, harness: StoreHarness) -> None:
        store = harness.store
        project = await harness.new_project({J.j1: "pending", J.j2: "pending", J.j3: "pending"})
        await store.sync_project(project, 0)

        mine = await store.claim_due_jobs("replica-a", 2, 30)
        theirs = await store.claim_due_jobs("replica-b", 10, 30)

        assert len(mine) == 2
        assert {j.job_id for j in theirs} == {J.j1, J.j2, J.j3} - {j.job_id for j in mine}
        assert all(j.project_id == project for j in mine + theirs)
        assert await store.claim_due_jobs("replica-c", 10, 30) == []

        assert await store.renew_leases("replica-a", 60) == 2
        recorded = await store.finish_round(
            "replica-a", [PollOutcome(project, mine[0].job_id, None, "still processing", 120)]
        )
        assert (recorded.rescheduled, recorded.changed, recorded.refused) == (1, {}, {})
        state = (await harness.job_states([mine[0].job_id]))[mine[0].job_id]
        assert (state.attempts, state.lease_owner, state.last_error) == (
            1,
            None,
            "still processing",
        )
        assert 115 < state.next_check_in_seconds <= 120

        assert await store.release_leases("replica-b") == 1
        released = theirs[0].job_id
        assert (await harness.job_states([released]))[released].lease_owner is None
        again = await store.claim_due_jobs("replica-c", 10, 30)
        assert [j.job_id for j in again] == [released]

    async def test_expired_lease_is_taken_over(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 0)
        assert len(await harness.store.claim_due_jobs("crashed", 10, 30)) == 1
        await harness.expire_leases()

        taken = await harness.store.claim_due_jobs("survivor", 10, 30)

        assert [j.job_id for j in taken] == [J.j1]
        assert (await harness.job_states([J.j1]))[J.j1].lease_owner == "survivor"

    async def test_settled_jobs_are_not_claimed(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: "pending"})
        await harness.store.sync_project(project, 0)
        await harness.store.apply_results(project, {J.j1: URL_A})

        claimed = await harness.store.claim_due_jobs("r", 10, 30)

        assert [j.job_id for j in claimed] == [J.j2]
        assert (await harness.job_states([J.j1]))[J.j1].settled

    async def test_projects_with_pending_pages_in_id_order(self, harness: StoreHarness) -> None:
        with_pending = sorted(
            [await harness.new_project({J.named(f"p{i}"): "pending"}) for i in range(5)]
        )
        await harness.new_project({J.done: URL_A})
        await harness.new_project({})
        await harness.store.drain_changes(100, 0, 0)

        first = await harness.store.projects_with_pending(None, 3)
        rest = await harness.store.projects_with_pending(first[-1], 3)

        assert first + rest == with_pending
        assert await harness.store.projects_with_pending(rest[-1], 3) == []

    async def test_ping(self, harness: StoreHarness) -> None:
        await harness.store.ping()

    async def test_sweep_spread_makes_new_jobs_due_over_a_window(
        self, harness: StoreHarness
    ) -> None:
        """A restart over many untracked jobs must not make them all due at the same instant."""
        jobs = [J.named(f"spread-{i}") for i in range(60)]
        project = await harness.new_project(dict.fromkeys(jobs, "pending"))

        await harness.store.sync_project(project, 10, 100)

        due_in = sorted(s.next_check_in_seconds for s in (await harness.job_states(jobs)).values())
        assert due_in[0] > 5
        assert due_in[-1] <= 110
        assert due_in[-1] - due_in[0] > 50  # spread, not bunched

    async def test_purge_forgets_only_what_is_past_retention(self, harness: StoreHarness) -> None:
        store = harness.store
        project = await harness.new_project({J.old: "pending", J.new: "pending", J.open: "pending"})
        await store.sync_project(project, 0)
        await store.apply_results(project, {J.old: URL_A, J.new: URL_B})
        await store.ingest_result(J.orphan_old, URL_A, None, 0)
        await store.ingest_result(J.orphan_new, URL_B, None, 0)
        await harness.backdate_settled(J.old, 8 * 86400)
        await harness.backdate_parked(J.orphan_old, 8 * 86400)

        purged = await store.purge(7 * 86400, 100)

        assert purged == (1, 1)
        assert set(await harness.job_states([J.old, J.new, J.open])) == {J.new, J.open}
        assert await harness.parked_results() == {J.orphan_new: URL_B}
        assert await store.purge(7 * 86400, 100) == (0, 0)

    # --- Beyond the original suite: each case pins a rule of the SQL the fake must follow ---

    async def test_jobs_not_yet_due_are_not_claimed(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 60)

        assert await harness.store.claim_due_jobs("r", 10, 30) == []

    async def test_keys_that_are_not_task_ids_are_reported_never_tracked(
        self, harness: StoreHarness
    ) -> None:
        long_key = "k" * 300
        upper = J.upper.upper()  # a UUID in capitals is still one
        project = await harness.new_project(
            {long_key: "pending", "job-1": "pending", J.short: "pending", upper: "pending"}
        )

        snapshot = await harness.store.sync_project(project, 0)
        stats = await harness.store.pending_stats()

        assert snapshot is not None
        assert snapshot.untrackable == {long_key[:64]: 300, "job-1": 5}
        assert set(snapshot.pending_jobs) == {J.short, upper}
        assert (stats.pending, stats.untrackable) == (2, 2)
        assert await harness.untracked_reasons(project) == {
            "job-1": untrackable_reason("job-1"),
            long_key[:64]: untrackable_reason(long_key),
        }
        assert await harness.store.claim_due_jobs("r", 10, 30) != []
        with pytest.raises(StoreRejected):
            await harness.store.ingest_result(long_key, URL_A, None, 0)
        with pytest.raises(StoreRejected):
            await harness.store.ingest_result("job-1", URL_A, None, 0)

        # the app resolves them itself
        await harness.add_clips(project, {long_key: "failed", "job-1": "failed"})
        await harness.store.drain_changes(100, 0, 0)
        assert (await harness.store.pending_stats()).untrackable == 0

    async def test_pending_keys_beyond_the_project_limit_are_reported_until_room_is_made(
        self, harness: StoreHarness
    ) -> None:
        assert await harness.store.set_tracking_limits(2) == 0
        keys = sorted([J.over_a, J.over_b, J.over_c])
        project = await harness.new_project(dict.fromkeys(keys, "pending"))
        other = await harness.new_project({J.elsewhere: "pending"})  # the limit is per project

        await harness.store.drain_changes(100, 0, 0)

        # In key order: the same keys are tracked whichever call gets there first.
        tracked = await harness.job_states([*keys, J.elsewhere])
        assert set(tracked) == {keys[0], keys[1], J.elsewhere}
        assert tracked[J.elsewhere].project_id == other
        assert await harness.untracked_reasons(project) == {keys[2]: over_limit_reason(2)}
        assert (await harness.store.pending_stats()).untrackable == 1
        assert await harness.store.set_tracking_limits(2) == 1

        # A check of the project asks to track it again: still over the limit.
        await harness.store.track_jobs(project, [keys[2]], 0)
        assert set(await harness.job_states([keys[2]])) == set()

        await harness.store.apply_results(project, {keys[0]: URL_A})  # room for one
        await harness.store.sync_project(project, 0)

        assert set(await harness.job_states(keys)) == set(keys)
        assert await harness.untracked_reasons(project) == {}
        assert (await harness.store.pending_stats()).untrackable == 0

    async def test_a_raised_limit_tracks_the_rest_at_the_next_reconcile(
        self, harness: StoreHarness
    ) -> None:
        await harness.store.set_tracking_limits(1)
        keys = sorted([J.raise_a, J.raise_b])
        project = await harness.new_project(dict.fromkeys(keys, "pending"))
        await harness.store.sync_project(project, 0)
        assert set(await harness.job_states(keys)) == {keys[0]}

        await harness.store.set_tracking_limits(1000)
        await harness.store.sync_project(project, 0)

        assert set(await harness.job_states(keys)) == set(keys)
        assert (await harness.store.pending_stats()).untrackable == 0
        with pytest.raises(StoreRejected):
            await harness.store.set_tracking_limits(0)

    async def test_a_claim_takes_each_projects_oldest_due_job_first(
        self, harness: StoreHarness
    ) -> None:
        busy_keys = [J.named(f"busy-{i}") for i in range(6)]
        busy = await harness.new_project(dict.fromkeys(busy_keys, "pending"))
        await harness.store.sync_project(busy, 0)
        await harness.backdate_due(busy_keys, 3600)  # long overdue, a backlog
        lone = await harness.new_project({J.lone: "pending"})
        await harness.store.sync_project(lone, 0)

        first = await harness.store.claim_due_jobs("r", 3, 30)
        capped = await harness.store.claim_due_jobs("s", 10, 30, per_project=2)

        assert J.lone in {j.job_id for j in first}
        assert [j.project_id for j in first].count(busy) == 2
        assert [j.project_id for j in capped] == [busy, busy]

    async def test_pending_stats_count_unsettled_jobs_and_waiting_changes(
        self, harness: StoreHarness
    ) -> None:
        assert await harness.store.pending_stats() == PendingStats(0, 0.0, 0, 0)
        tracked = await harness.new_project({J.j1: "pending", J.j2: "pending", J.j3: URL_A})
        await harness.store.drain_changes(100, 0, 0)
        await harness.new_project({J.later: "pending"})

        stats = await harness.store.pending_stats()

        assert (stats.pending, stats.untrackable, stats.changes_waiting) == (2, 0, 1)
        assert stats.oldest_age_seconds >= 0
        await harness.store.apply_results(tracked, {J.j1: URL_A})
        assert (await harness.store.pending_stats()).pending == 1

    async def test_a_webhook_result_reaches_every_project_holding_the_job(
        self, harness: StoreHarness
    ) -> None:
        first = await harness.new_project({J.shared: "pending"})
        second = await harness.new_project({J.shared: "pending", J.own: "pending"})
        await harness.store.drain_changes(100, 0, 0)

        outcome = await harness.store.ingest_result(J.shared, "failed", "boom", 0)

        assert (outcome.kind, outcome.project_ids) == ("applied", tuple(sorted([first, second])))
        assert await harness.clips_of(first) == {J.shared: "failed"}
        assert await harness.clips_of(second) == {J.shared: "failed", J.own: "pending"}
        state = (await harness.job_states([J.shared]))[J.shared]
        assert (state.settled, state.outcome, state.last_error) == (True, "failed", "boom")

    async def test_a_webhook_right_after_the_apps_write_is_applied_not_parked(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.late: "pending"})  # outbox not drained yet

        outcome = await harness.store.ingest_result(J.late, URL_A, None, 0)

        assert (outcome.kind, outcome.project_ids) == ("applied", (project,))
        assert await harness.clips_of(project) == {J.late: URL_A}
        assert await harness.outbox_rows() == 0

    async def test_note_job_error_records_on_tracked_jobs_only(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 0)

        assert await harness.store.note_job_error(J.j1, "URL outside the allow-list")
        assert not await harness.store.note_job_error(J.untracked, "whatever")
        state = (await harness.job_states([J.j1]))[J.j1]
        assert state.last_error == "URL outside the allow-list"

    async def test_make_due_now_makes_every_pending_job_due_page_by_page(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        await harness.new_project({J.g1: "pending", J.g2: "pending", J.g3: "pending"})
        await store.drain_changes(100, 3600, 0)  # first check an hour away: none is due
        assert await store.claim_due_jobs("me", 10, 30) == []

        pages = [await store.make_due_now(2), await store.make_due_now(2)]
        last = await store.make_due_now(2)
        claimed = await store.claim_due_jobs("me", 10, 30)

        assert (pages, last) == ([2, 1], 0)
        assert {job.job_id for job in claimed} == {J.g1, J.g2, J.g3}

    async def test_failure_reasons_come_from_the_job_row_else_the_webhook(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        project = await harness.new_project(
            {J.g1: "pending", J.g2: "pending", J.b1: "failed", J.b2: "pending"}
        )
        await store.drain_changes(100, 0, 0)
        claimed = await store.claim_due_jobs("me", 10, 30)
        assert len(claimed) == 3
        await store.finish_round("me", [PollOutcome(project, J.g1, "failed", "gave up", 10)])
        await store.ingest_result(J.g2, "failed", "Runware: content policy", 0)

        reasons = await store.failure_reasons(project, [J.g1, J.g2, J.b1, J.b2, J.untracked])

        assert reasons == {J.g1: "gave up", J.g2: "Runware: content policy"}
        assert await store.failure_reasons(project, []) == {}

    async def test_finish_round_writes_results_reasons_and_skips_a_refused_project(
        self, harness: StoreHarness
    ) -> None:
        store = harness.store
        good = await harness.new_project({J.g1: "pending", J.g2: "pending"})
        bad = await harness.new_project({J.b1: "pending"})
        await store.drain_changes(100, 0, 0)
        await harness.refuse_writes(bad, "project is archived")
        claimed = await store.claim_due_jobs("me", 10, 30)
        assert len(claimed) == 3

        outcome = await store.finish_round(
            "me",
            [
                PollOutcome(good, J.g1, URL_A, None, 10),
                PollOutcome(good, J.g2, "failed", "gave up after 3600 s", 10),
                PollOutcome(bad, J.b1, URL_B, None, 10),
            ],
        )

        assert outcome.changed == {good: {J.g1: URL_A, J.g2: "failed"}}
        assert list(outcome.refused) == [bad]
        assert "project is archived" in outcome.refused[bad]
        assert outcome.rescheduled == 1  # the refused project's job, polled again later
        assert await harness.clips_of(good) == {J.g1: URL_A, J.g2: "failed"}
        assert await harness.clips_of(bad) == {J.b1: "pending"}
        states = await harness.job_states([J.g1, J.g2, J.b1])
        assert (states[J.g2].settled, states[J.g2].last_error) == (True, "gave up after 3600 s")
        assert (states[J.b1].settled, states[J.b1].attempts, states[J.b1].lease_owner) == (
            False,
            1,
            None,
        )

    async def test_finish_round_leaves_a_job_another_owner_holds(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 0)
        assert len(await harness.store.claim_due_jobs("other", 10, 30)) == 1

        outcome = await harness.store.finish_round(
            "late-replica", [PollOutcome(project, J.j1, None, None, 10)]
        )

        assert outcome.rescheduled == 0
        state = (await harness.job_states([J.j1]))[J.j1]
        assert (state.attempts, state.lease_owner) == (0, "other")

    async def test_renewal_and_release_touch_only_the_owners_leases(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.j1: "pending", J.j2: "pending"})
        await harness.store.sync_project(project, 0)
        await harness.store.claim_due_jobs("a", 1, 30)
        await harness.store.claim_due_jobs("b", 1, 30)

        assert await harness.store.renew_leases("a", 60) == 1
        assert await harness.store.release_leases("a") == 1
        assert await harness.store.release_leases("a") == 0
        owners = {s.lease_owner for s in (await harness.job_states([J.j1, J.j2])).values()}
        assert owners == {None, "b"}

    async def test_a_deleted_project_settles_its_jobs(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 0)
        await harness.delete_project(project)

        assert await harness.store.sync_project(project, 0) is None
        state = (await harness.job_states([J.j1]))[J.j1]
        assert (state.settled, state.outcome) == (True, "project deleted")
        assert await harness.store.claim_due_jobs("r", 10, 30) == []

    async def test_a_clip_the_app_sets_back_to_pending_is_tracked_afresh(
        self, harness: StoreHarness
    ) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.sync_project(project, 0)
        claimed = await harness.store.claim_due_jobs("r", 10, 30)
        await harness.store.finish_round("r", [PollOutcome(project, J.j1, None, None, 0)])
        await harness.store.apply_results(project, {J.j1: URL_A})
        assert len(claimed) == 1
        assert (await harness.job_states([J.j1]))[J.j1].settled

        await harness.add_clips(project, {J.j1: "pending"})  # the app retries the video
        await harness.store.drain_changes(100, 0, 0)

        state = (await harness.job_states([J.j1]))[J.j1]
        assert (state.settled, state.attempts, state.outcome) == (False, 0, None)

    async def test_resync_pages_through_projects_and_finds_writes_the_trigger_missed(
        self, harness: StoreHarness
    ) -> None:
        unseen = [
            await harness.new_project({J.named(f"u{i}"): "pending"}, triggers=False) for i in (0, 1)
        ]
        await harness.new_project({J.done: URL_A}, triggers=False)
        assert await harness.outbox_rows() == 0

        pages = []
        after: UUID | None = None
        while True:
            page = await harness.store.resync_page(after, 2, 0, 0)
            pages.append(page)
            if page.last is None:
                break
            after = page.last

        assert [p.scanned for p in pages] == [2, 1]
        assert sum(p.reconciled for p in pages) == 2
        assert all(p.refused == {} for p in pages)
        states = await harness.job_states([J.u0, J.u1])
        assert {s.project_id for s in states.values()} == set(unseen)

    async def test_drain_reports_a_refused_project_and_goes_on(self, harness: StoreHarness) -> None:
        await harness.store.ingest_result(J.stuck, URL_A, None, 0)  # parked: nobody holds it
        bad = await harness.new_project({J.stuck: "pending", J.other: "pending"})
        await harness.refuse_writes(bad, "project is archived")
        good = await harness.new_project({J.fine: "pending"})

        drained = await harness.store.drain_changes(100, 0, 0)

        assert (drained.rows, drained.projects) == (2, 2)
        assert list(drained.refused) == [bad]
        assert "project is archived" in drained.refused[bad]
        # The refused project's reconcile left nothing behind; the next one went on.
        assert set(await harness.job_states([J.stuck, J.other, J.fine])) == {J.fine}
        assert (await harness.job_states([J.fine]))[J.fine].project_id == good
        assert await harness.clips_of(bad) == {J.stuck: "pending", J.other: "pending"}

    async def test_a_refused_webhook_write_stores_nothing(self, harness: StoreHarness) -> None:
        project = await harness.new_project({J.j1: "pending"})
        await harness.store.drain_changes(100, 0, 0)
        await harness.refuse_writes(project, "project is archived")

        with pytest.raises(StoreRejected):
            await harness.store.ingest_result(J.j1, URL_A, None, 0)

        assert await harness.parked_results() == {}
        assert await harness.clips_of(project) == {J.j1: "pending"}

    async def test_a_user_sees_only_what_row_level_security_shows_them(
        self, harness: StoreHarness
    ) -> None:
        alice, bob = str(uuid4()), str(uuid4())
        project = await harness.new_project({J.j1: "pending"}, owner=alice)

        def user(sub: str) -> UserCaller:
            claims = {"sub": sub, "role": "authenticated"}
            return UserCaller(make_key("authenticated", sub=sub), claims)

        assert await harness.store.project_visible_to(project, user(alice))
        assert not await harness.store.project_visible_to(project, user(bob))
        assert not await harness.store.project_visible_to(uuid4(), user(alice))
