"""With the database unreachable, `/metrics` still answers: the pending-job gauges keep their
last values and the failed reads are counted (Supabase transport, PostgREST stand-in down)."""

from __future__ import annotations

import asyncpg
import httpx

from reconciler.local.serving import serve
from tests import webhook_bodies as bodies
from tests.job_ids import J
from tests.plugin import WEBHOOK_SECRET, ServiceFactory
from tests.projects import new_project
from tests.scrape import scrape
from tests.standins.postgrest import SERVICE_ROLE_KEY, PostgrestStandIn
from tests.waiting import wait_until


async def test_scrapes_keep_the_last_values_while_the_database_is_down(
    service_env: dict[str, str],
    run_service: ServiceFactory,
    database_url: str,
    db: asyncpg.Connection,
) -> None:
    await new_project(db, {J.job_1: "pending"})
    await db.execute(
        "insert into reconciler.jobs (job_id, project_id, first_seen_at)"
        " select $1, id, now() - interval '90 seconds' from public.projects",
        J.job_1,
    )
    stand_in = PostgrestStandIn(database_url)
    async with serve(stand_in.app()) as rest_url:
        env = {k: v for k, v in service_env.items() if k != "DATABASE_URL"}
        env |= {"SUPABASE_URL": rest_url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY}
        async with run_service(env) as url:
            healthy = await scrape(url)
            assert healthy.get("reconciler_pending_jobs") == 1
            assert healthy.get("reconciler_oldest_pending_job_age_seconds") >= 90
            assert healthy.get("reconciler_scrape_errors_total") == 0

            stand_in.available = False
            webhook = bodies.flat_success(J.job_1, bodies.video_url("x"))
            async with httpx.AsyncClient(timeout=10) as client:
                refused = await client.post(
                    f"{url}/webhooks/runware", params={"token": WEBHOOK_SECRET}, json=webhook
                )
            assert refused.status_code == 503

            async def read_failed() -> bool:
                return (await scrape(url)).get("reconciler_scrape_errors_total") >= 1

            # The next database read comes once the cached values are a few seconds old.
            await wait_until(read_failed, timeout=30, interval=0.2)
            down = await scrape(url)
            assert down.get("reconciler_pending_jobs") == 1
            assert down.get("reconciler_oldest_pending_job_age_seconds") == (
                healthy.get("reconciler_oldest_pending_job_age_seconds")
            )
            assert down.get("reconciler_webhooks_total", outcome="unavailable") == 1
