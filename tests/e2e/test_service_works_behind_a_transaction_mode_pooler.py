"""Behind a transaction-mode pooler (PgBouncer's `pool_mode=transaction`, what Supabase runs on
port 6543) the service detects it at start-up, says so in one line, turns asyncpg's
prepared-statement cache off, and works: webhooks applied without a single 5xx, polls settle
the rest, the outbox is drained by polling (no LISTEN)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import asyncpg
import pytest

from reconciler.local.simulator import RunwareSimulator
from tests.pgbouncer import running_pgbouncer
from tests.plugin import ENGINE_ENV, WEBHOOK_SECRET
from tests.processes import ServiceProcess
from tests.projects import clips_of, new_project
from tests.waiting import wait_until

PROJECTS = 6
JOBS_PER_PROJECT = 10


def _via(database_url: str, port: int) -> str:
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


@pytest.fixture
async def pooled_url(database_url: str) -> AsyncIterator[str]:
    target = urlsplit(database_url).port
    assert target is not None
    # Fewer server connections than the service's pool: client connections share them.
    async with running_pgbouncer(target, pool_mode="transaction", servers=2) as port:
        yield _via(database_url, port)


async def _nothing_pending(db: asyncpg.Connection) -> bool:
    pending: int = await db.fetchval(
        "select count(*) from public.projects p, jsonb_each(p.clips) e"
        " where e.value = '\"pending\"'"
    )
    return pending == 0


async def test_the_service_detects_the_pooler_and_settles_everything_through_it(
    service_env: dict[str, str],
    simulator: RunwareSimulator,
    db: asyncpg.Connection,
    pooled_url: str,
) -> None:
    env = service_env | ENGINE_ENV | {"DATABASE_URL": pooled_url, "RECONCILER_DB_POOL_SIZE": "6"}
    service = ServiceProcess(env, capture_output=True)
    webhook_url = f"{service.url}/webhooks/runware?token={WEBHOOK_SECRET}"
    projects: list[UUID] = []
    with_webhook = 0
    try:
        await service.start()
        for _ in range(PROJECTS):
            jobs = [str(uuid4()) for _job in range(JOBS_PER_PROJECT)]
            for i, job in enumerate(jobs):
                # Half announce their result by webhook, half are found by polling.
                url = webhook_url if i % 2 == 0 else None
                with_webhook += url is not None
                simulator.add_job(job, duration=0.1 * (i % 4), outcome="success", webhook_url=url)
            projects.append(await new_project(db, dict.fromkeys(jobs, "pending")))
        await wait_until(lambda: _nothing_pending(db), timeout=90)
        await simulator.webhooks_settled()
    finally:
        output = await service.stop_and_read()

    truth = simulator.truth()
    for project in projects:
        clips = await clips_of(db, project)
        assert clips == {job: truth[job] for job in clips}
    assert simulator.counters.webhook_delivered == with_webhook
    assert simulator.counters.webhook_failed_attempts == 0, output
    detected = [line for line in output.splitlines() if "transaction-mode pooler" in line]
    assert len(detected) == 1, output
    assert "5432" in detected[0]
    assert "does not exist" not in output
