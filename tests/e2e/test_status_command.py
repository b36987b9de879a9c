"""`reconciler status` as an operator runs it: stuck jobs with their last error, failures with
reasons, parked results, and every replica with its feed — from the database, or from a
running service's JSON API with the admin token. A replica killed with SIGKILL is shown dead."""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.ports import PollOutcome
from reconciler.store.postgres import connect_postgres_store
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.plugin import ADMIN_TOKEN, ENGINE_ENV
from tests.processes import ServiceProcess
from tests.projects import tracked_project
from tests.waiting import wait_until

URL = "https://vm.runware.ai/video/os/a/ws/2/vi/a.mp4"
# Short beats so that a dead replica shows within a second (3 missed beats).
HEARTBEAT_ENV = {"RECONCILER_HEARTBEAT_SECONDS": "0.2"}


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args)
    return done.returncode, done.stdout, done.stderr


async def _status_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    code, out, err = await _run(env, "status", "--json", *args)
    assert code == 0, err
    body: dict[str, Any] = json.loads(out)
    return body


async def _seed(db: asyncpg.Connection, database_url: str) -> UUID:
    """A stuck job (two hours, with Runware's last word and progress), two failures, five
    webhook results applied to another project, and one for a job no project holds yet."""
    project = await tracked_project(
        db, {J.stuck_job: "pending", J.fresh_job: "pending", J.bad_1: "pending", J.bad_2: "pending"}
    )
    await db.execute(
        "update reconciler.jobs set first_seen_at = now() - interval '2 hours' where job_id = $1",
        J.stuck_job,
    )
    store = await connect_postgres_store(database_url)
    try:
        await store.finish_round(
            "seeding",
            [
                PollOutcome(project, J.stuck_job, None, "Runware: still queued", 60, progress=40),
                PollOutcome(project, J.bad_1, "failed", "Runware: content moderation", 0),
                PollOutcome(project, J.bad_2, "failed", "gave up after 3601 s without a result", 0),
            ],
        )
        # Five webhooks applied to the project holding their job (their results are kept
        # until retention) and one for a job no project holds: exactly one result is parked.
        delivered = [J.named(f"delivered{i}") for i in range(5)]
        await tracked_project(db, dict.fromkeys(delivered, "pending"))
        for job_id in delivered:
            await store.ingest_result(job_id, URL, None, 0)
        await store.ingest_result(J.parked_job, URL, None, 0)
    finally:
        await store.close()
    return project


async def test_status_names_stuck_jobs_failures_and_parked_results(
    service_env: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    project = await _seed(db, database_url)

    code, table, err = await _run(service_env, "status")
    body = await _status_json(service_env)

    assert code == 0, err
    for shown in (J.stuck_job, "Runware: still queued", "40%", "content moderation"):
        assert shown in table
    assert "No replica is alive" in table
    assert "Parked webhook results (job in no project yet): 1" in table
    assert body["unsettled"] == 2
    assert [job["job_id"] for job in body["oldest"]] == [J.stuck_job, J.fresh_job]
    stuck = body["oldest"][0]
    assert stuck["project_id"] == str(project)
    assert stuck["last_error"] == "Runware: still queued"
    assert stuck["progress"] == 40
    assert stuck["attempts"] == 1
    assert {b["label"]: b["count"] for b in body["age_buckets"]}["1-6h"] == 1
    assert {f["job_id"]: f["reason"] for f in body["failures_24h"]} == {
        J.bad_1: "Runware: content moderation",
        J.bad_2: "gave up after 3601 s without a result",
    }
    assert {r["reason"] for r in body["failure_reasons_24h"]} == {
        "Runware: content moderation",
        "gave up after N s without a result",
    }
    assert body["parked_results"] == 1
    assert body["replicas"] == []
    assert body["archive_backlog"] is None


async def test_status_of_one_project_lists_every_clip(
    service_env: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    project = await _seed(db, database_url)

    code, table, err = await _run(service_env, "status", "--project", str(project))
    body = await _status_json(service_env, "--project", str(project))

    assert code == 0, err
    assert J.stuck_job in table
    assert {clip["job_id"]: clip["status"] for clip in body["clips"]} == {
        J.stuck_job: "pending",
        J.fresh_job: "pending",
        J.bad_1: "failed",
        J.bad_2: "failed",
    }


async def test_status_rejects_a_bad_or_unknown_project(service_env: dict[str, str]) -> None:
    bad = await _run(service_env, "status", "--project", "not-a-uuid")
    unknown = await _run(service_env, "status", "--project", str(uuid4()))

    assert bad[0] == 2
    assert "--project must be a UUID" in bad[2]
    assert unknown[0] == 1
    assert "not found" in unknown[2]


async def test_two_replicas_are_listed_and_a_killed_one_is_shown_dead(
    service_env: dict[str, str], simulator: RunwareSimulator
) -> None:
    env = service_env | ENGINE_ENV | HEARTBEAT_ENV
    replicas = [ServiceProcess(dict(env)), ServiceProcess(dict(env))]
    try:
        await asyncio.gather(*(r.start() for r in replicas))

        async def both_alive() -> bool:
            listed = (await _status_json(service_env))["replicas"]
            return len(listed) == 2 and all(r["alive"] for r in listed)

        await wait_until(both_alive, timeout=60)
        listed = (await _status_json(service_env))["replicas"]
        assert {r["feed_state"] for r in listed} == {"none"}  # no change feed configured
        killed, survivor = replicas
        assert killed.process is not None
        assert survivor.process is not None
        # Owner ids are host:pid:random, so each row names its process.
        killed_pid, survivor_pid = killed.process.pid, survivor.process.pid
        killed.kill()

        async def killed_shown_dead() -> bool:
            listed = (await _status_json(service_env))["replicas"]
            alive = {int(r["owner"].split(":")[-2]): r["alive"] for r in listed}
            return alive == {killed_pid: False, survivor_pid: True}

        await wait_until(killed_shown_dead, timeout=60)
    finally:
        await asyncio.gather(*(r.stop() for r in replicas))


async def test_status_reads_a_running_service_with_the_admin_token(
    service_env: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    await _seed(db, database_url)
    env = service_env | ENGINE_ENV | HEARTBEAT_ENV
    service = ServiceProcess(dict(env))
    try:
        await service.start()
        # Only the token: the command needs no database settings with --url.
        remote_env = {"RECONCILER_ADMIN_TOKEN": ADMIN_TOKEN}

        async def replica_listed() -> bool:
            body = await _status_json(remote_env, "--url", service.url)
            return len(body["replicas"]) == 1

        await wait_until(replica_listed, timeout=60)
        body = await _status_json(remote_env, "--url", service.url)
        code, table, err = await _run(remote_env, "status", "--url", service.url)
        wrong = await _run(
            {"RECONCILER_ADMIN_TOKEN": "not-the-token"}, "status", "--url", service.url
        )
        missing = await _run({}, "status", "--url", service.url)
    finally:
        await service.stop()

    assert J.stuck_job in [job["job_id"] for job in body["oldest"]]
    assert body["parked_results"] == 1
    assert code == 0, err
    assert J.stuck_job in table
    assert wrong[0] == 1
    assert "refused the admin token (401)" in wrong[2]
    assert "not-the-token" not in wrong[1] + wrong[2]
    assert missing[0] == 2
    assert "RECONCILER_ADMIN_TOKEN" in missing[2]


async def test_status_says_when_the_service_cannot_be_reached(service_env: dict[str, str]) -> None:
    code, _, err = await _run(
        {"RECONCILER_ADMIN_TOKEN": ADMIN_TOKEN}, "status", "--url", "http://127.0.0.1:9"
    )

    assert code == 1
    assert "service unreachable" in err


async def test_status_on_a_database_without_the_operator_migration_says_what_to_do(
    service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    await db.execute("drop function public.reconciler_operator_overview(integer)")

    code, _, err = await _run(service_env, "status")

    assert code == 1
    assert "reconciler migrate" in err
