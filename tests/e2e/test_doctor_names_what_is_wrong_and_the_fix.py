"""`reconciler doctor` as an adopter runs it, against a real database and the Runware simulator:
one line per item, ✓ or ✗ with the fix, and a non-zero exit when anything is wrong."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import asyncpg
import pytest

from reconciler.local.storage import StorageStandIn
from tests.cli import run_reconciler
from tests.databases import PgCluster

PASSWORD = "doctor-sEcret-pw-0123"


async def _doctor(env: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Exit code, each item's line by its name, and the whole output."""
    done = await asyncio.to_thread(run_reconciler, env, "doctor")
    output = done.stdout + done.stderr
    lines = {}
    for line in done.stdout.splitlines():
        mark, _, rest = line.partition(" ")
        item, _, _ = rest.partition(":")
        assert mark in ("✓", "✗"), line
        lines[item] = line
    return done.returncode, lines, output


async def test_a_migrated_database_and_an_accepted_key_are_all_green(
    service_env: dict[str, str],
) -> None:
    code, lines, output = await _doctor(service_env)
    assert code == 0, output
    assert set(lines) == {
        "settings",
        "database",
        "projects",
        "migrations",
        "realtime",
        "pooler",
        "runware",
    }
    assert all(line.startswith("✓") for line in lines.values()), output
    assert "not used" in lines["realtime"]  # the Postgres transport, feed off


async def test_a_database_without_migrations_names_the_command_to_run(
    service_env: dict[str, str], pg_cluster: PgCluster
) -> None:
    bare = await pg_cluster.create_baseline_database()
    code, lines, output = await _doctor(service_env | {"DATABASE_URL": bare})
    assert code == 1, output
    assert lines["migrations"].startswith("✗"), output
    assert "run `reconciler migrate`" in lines["migrations"]
    assert lines["projects"].startswith("✓")


async def test_a_database_missing_the_latest_migration_names_the_command_to_run(
    service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    last = await db.fetchval("select max(name) from reconciler.schema_migrations")
    await db.execute("delete from reconciler.schema_migrations where name = $1", last)
    code, lines, output = await _doctor(service_env)
    assert code == 1, output
    assert "1 of" in lines["migrations"], output
    assert last in lines["migrations"]
    assert "run `reconciler migrate`" in lines["migrations"]


async def test_a_database_newer_than_this_version_is_named(
    service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    await db.execute(
        "insert into reconciler.schema_migrations (name) values ('99991231000000_later.sql')"
    )
    code, lines, output = await _doctor(service_env)
    assert code == 1, output
    assert "99991231000000_later.sql" in lines["migrations"]
    assert "upgrade the reconciler" in lines["migrations"]


async def test_a_rejected_runware_key_is_red(service_env: dict[str, str]) -> None:
    code, lines, output = await _doctor(service_env | {"RUNWARE_API_KEY": "not-the-key-at-all"})
    assert code == 1, output
    assert lines["runware"].startswith("✗"), output
    assert "RUNWARE_API_KEY" in lines["runware"]
    assert "not-the-key-at-all" not in output
    assert lines["database"].startswith("✓")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by nobody listening: connections to it are refused. Kept bound
    for the test, so that no other process can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_an_unreachable_database_names_its_host_and_never_the_password(
    service_env: dict[str, str], closed_port: int
) -> None:
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port}/appdb"
    code, lines, output = await _doctor(service_env | {"DATABASE_URL": url})
    assert code == 1, output
    assert lines["database"].startswith("✗"), output
    assert f"127.0.0.1:{closed_port}/appdb" in lines["database"]
    assert PASSWORD not in output
    assert "projects" not in lines  # nothing more is asked of a database that is not there


async def test_realtime_needs_projects_in_the_publication(
    service_env: dict[str, str], db: asyncpg.Connection
) -> None:
    async with StorageStandIn("service-key", buckets=[]) as supabase:
        env = service_env | {
            "RECONCILER_FEED": "realtime",
            "SUPABASE_URL": supabase.url,
            "SUPABASE_SERVICE_ROLE_KEY": "service-key-0123456789abcdef0123456789",
        }
        code, lines, output = await _doctor(env)
        assert code == 1, output
        assert "alter publication supabase_realtime add table public.projects" in lines["realtime"]
        await db.execute("alter publication supabase_realtime add table public.projects")
        code, lines, output = await _doctor(env)
        assert code == 0, output
        assert lines["realtime"].startswith("✓")


async def test_archiving_needs_its_bucket(service_env: dict[str, str]) -> None:
    key = "service-key-0123456789abcdef0123456789"
    async with StorageStandIn(key, buckets=["videos"]) as storage:
        env = service_env | {
            "RECONCILER_ARCHIVE": "supabase",
            "SUPABASE_URL": storage.url,
            "SUPABASE_SERVICE_ROLE_KEY": key,
        }
        code, lines, output = await _doctor(env | {"RECONCILER_ARCHIVE_BUCKET": "videos"})
        assert code == 0, output
        assert lines["storage"].startswith("✓")
        code, lines, output = await _doctor(env | {"RECONCILER_ARCHIVE_BUCKET": "missing"})
        assert code == 1, output
        assert lines["storage"].startswith("✗")
        assert "'missing' does not exist" in lines["storage"]
