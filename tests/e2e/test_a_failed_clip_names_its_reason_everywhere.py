"""A failed clip says why wherever it is shown: `reconciler check`'s table and its JSON details
(as `error`, also when it had failed before this check), and `reconciler status --project`.
The reasons are known: Runware's for a job the simulator fails, the webhook's for one that
reported its failure, and "no reason recorded" for a clip written "failed" by the app."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.store.postgres import connect_postgres_store
from tests.cli import run_reconciler
from tests.job_ids import J
from tests.projects import clips_of, tracked_project

# Wide enough that no reason is folded across lines of a table.
WIDE = 400  # columns


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args, columns=WIDE)
    return done.returncode, done.stdout, done.stderr


async def test_every_view_of_a_failed_clip_names_its_reason(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    database_url: str,
) -> None:
    simulator.add_job(J.polled_bad, duration=0, outcome="error", error_code="timeoutProvider")
    project = await tracked_project(
        db, {J.polled_bad: "pending", J.hooked_bad: "pending", J.app_failed: "failed"}
    )
    store = await connect_postgres_store(database_url)
    try:
        await store.ingest_result(J.hooked_bad, "failed", "Runware: content moderation", 0)
    finally:
        await store.close()

    first_code, first_raw, first_err = await _run(service_env, "check", str(project), "--json")
    # Now every failure happened before the check: the reasons come from what was recorded.
    json_code, raw, json_err = await _run(service_env, "check", str(project), "--json")
    table_code, table, table_err = await _run(service_env, "check", str(project))
    status_code, status, status_err = await _run(service_env, "status", "--project", str(project))

    assert (first_code, json_code, table_code, status_code) == (0, 0, 0, 0), (
        first_err + json_err + table_err + status_err
    )
    assert set((await clips_of(db, project)).values()) == {"failed"}
    newly = {d["jobId"]: d for d in json.loads(first_raw)["details"]}
    assert "timeoutProvider" in newly[J.polled_bad]["error"]
    details = {d["jobId"]: d for d in json.loads(raw)["details"]}
    assert all(d["status"] == "failed" and d["alreadyProcessed"] for d in details.values())
    assert "timeoutProvider" in details[J.polled_bad]["error"]
    assert details[J.hooked_bad]["error"] == "Runware: content moderation"
    assert details[J.app_failed]["error"] == "no reason recorded"
    for shown in ("timeoutProvider", "Runware: content moderation", "no reason recorded"):
        assert shown in table
        assert shown in status
    for job_id in (J.polled_bad, J.hooked_bad, J.app_failed):
        assert job_id in table  # whole: an id is there to be copied
        assert job_id in status
