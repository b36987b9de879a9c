"""`reconciler status` and `reconciler check` against a real database whose clip keys, values
and reasons hold terminal escape sequences (a screen clear, an 8-bit CSI, an OSC 8 link),
a bidi override and rich markup: every command prints them as visible escapes, never as the
raw bytes a terminal would act on, and a key such as `[/oops]` neither restyles the output nor
stops the command after the check has run."""

from __future__ import annotations

import asyncio
import json
import re
from uuid import UUID, uuid4

import asyncpg

from reconciler.local.simulator import RunwareSimulator
from reconciler.ports import PollOutcome
from reconciler.store.postgres import connect_postgres_store
from tests.cli import run_reconciler
from tests.projects import clips_of, tracked_project

# Not UUIDs, so not trackable Runware task ids: reported, and still shown only escaped.
SCREEN_CLEAR_KEY = "\x1b[2J"
MARKUP_KEY = "[/oops]"
# What the app may write as a clip's value: a link whose text is not where it leads.
FAKE_LINK = "\x1b]8;;https://evil.example/\x1b\\https://vm.runware.ai/ok.mp4\x1b]8;;\x1b\\"
# What Runware (or whatever answers as Runware) may say about a job.
REASON = "Runware: \x9b2J\u202eeulav [bold red]moderated[/bold red] \x7f"
# Control characters no output line may hold: C0 but the line feed, DEL, C1, bidi controls.
RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


async def _run(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    done = await asyncio.to_thread(run_reconciler, env, *args, columns=400)
    return done.returncode, done.stdout, done.stderr


def _assert_no_raw_controls(output: str) -> None:
    raw = sorted({hex(ord(c)) for c in RAW_CONTROLS.findall(output)})
    assert not raw, f"raw control characters reached the terminal: {raw}"


async def _seed(db: asyncpg.Connection, database_url: str) -> tuple[UUID, str, str]:
    """A project with hostile keys and a hostile value, a stuck job whose last error is
    hostile, and a job that failed for a hostile reason."""
    stuck, failed = str(uuid4()), str(uuid4())
    project = await tracked_project(
        db,
        {
            stuck: "pending",
            failed: "pending",
            SCREEN_CLEAR_KEY: "pending",
            MARKUP_KEY: "pending",
            str(uuid4()): FAKE_LINK,
        },
    )
    store = await connect_postgres_store(database_url)
    try:
        await store.finish_round(
            "seeding",
            [
                PollOutcome(project, stuck, None, REASON, 60, progress=40),
                PollOutcome(project, failed, "failed", REASON, 0),
            ],
        )
    finally:
        await store.close()
    return project, stuck, failed


async def test_status_prints_hostile_keys_values_and_reasons_escaped(
    service_env: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    project, _, _ = await _seed(db, database_url)

    overview = await _run(service_env, "status")
    one_project = await _run(service_env, "status", "--project", str(project))
    as_json = await _run(service_env, "status", "--project", str(project), "--json")

    for code, out, err in (overview, one_project, as_json):
        assert code == 0, err
        _assert_no_raw_controls(out + err)
    # The failure's reason, as the overview's tables show it.
    assert "\\x9b2J\\u202eeulav [bold red]moderated[/bold red] \\x7f" in overview[1]
    # Every clip of the project: the keys as typed, escapes visible, and the app's value.
    listed = one_project[1]
    assert "\\x1b[2J" in listed
    assert MARKUP_KEY in listed
    assert "\\x1b]8;;https://evil.example/\\x1b\\https://vm.runware.ai/ok.mp4" in listed
    # JSON stays exact: the escapes decode to the stored text.
    clips = {clip["job_id"]: clip["value"] for clip in json.loads(as_json[1])["clips"]}
    assert clips == await clips_of(db, project)


async def test_check_prints_hostile_keys_escaped_and_exits_0(
    service_env: dict[str, str], db: asyncpg.Connection, database_url: str
) -> None:
    project, _, _ = await _seed(db, database_url)

    code, table, err = await _run(service_env, "check", str(project))
    json_code, raw, json_err = await _run(service_env, "check", str(project), "--json")

    assert code == 0, err
    assert json_code == 0, json_err
    _assert_no_raw_controls(table + err + raw + json_err)
    assert "\\x1b[2J" in table
    assert MARKUP_KEY in table
    assert json.loads(raw)["clips"] == await clips_of(db, project)


async def test_check_prints_runwares_reason_escaped(
    service_env: dict[str, str], simulator: RunwareSimulator, db: asyncpg.Connection
) -> None:
    failed = str(uuid4())
    simulator.add_job(failed, duration=0, outcome="error", error_message=REASON)
    project = await tracked_project(db, {failed: "pending"})

    code, table, err = await _run(service_env, "check", str(project))

    assert code == 0, err
    _assert_no_raw_controls(table + err)
    assert "\\x9b2J\\u202eeulav [bold red]moderated[/bold red] \\x7f" in table
    assert await clips_of(db, project) == {failed: "failed"}
