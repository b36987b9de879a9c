"""`serve` on a database without our migrations: it stays unready, its readiness answer says to
run `reconciler migrate`, and its log says so once (then once a minute) instead of failing every
call with `function … does not exist` several times a second."""

from __future__ import annotations

import httpx

from tests.databases import PgCluster
from tests.plugin import ENGINE_ENV
from tests.processes import ServiceProcess
from tests.waiting import wait_until


async def test_a_database_without_migrations_keeps_serve_unready_with_the_fix_named(
    service_env: dict[str, str], pg_cluster: PgCluster
) -> None:
    bare = await pg_cluster.create_baseline_database()
    env = service_env | ENGINE_ENV | {"DATABASE_URL": bare}
    answers: list[httpx.Response] = []

    async def says_migrate() -> bool:
        async with httpx.AsyncClient(timeout=5) as client:
            answers.append(await client.get(f"{service.url}/readyz"))
        return "reconciler migrate" in answers[-1].json().get("schema", "")

    async with ServiceProcess(env, ready_path="/healthz", capture_output=True) as service:
        await wait_until(says_migrate, timeout=60)
        output = await service.stop_and_read()
    assert answers[-1].status_code == 503
    told = [line for line in output.splitlines() if "run `reconciler migrate`" in line]
    assert told, output
    assert "not ready" in told[0]
    assert "does not exist" not in output
