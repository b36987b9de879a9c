"""Fault-injection soak: two replicas, a hostile Runware, a flaky realtime connection, crashes.

    python -m bench.soak                 # thousands of jobs, a few minutes
    python -m bench.soak --jobs 300      # the short variant (bench/tests/test_soak_converges.py)

Two `reconciler serve` processes on the Supabase transport (the PostgREST-RPC and realtime
stand-ins from tests/ behind one URL) share one PostgreSQL. The simulator drops 30% of the
webhooks, duplicates 20%, delivers 10% before the app has written "pending", and answers 10%
of API calls 429/503. Meanwhile the realtime connection is dropped periodically, one replica
is SIGKILLed and restarted several times, and the app keeps adding clips. At the end every
clip is compared with the simulator's truth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from uuid import UUID, uuid4

import asyncpg

from reconciler.local.localpg import LocalPostgres
from reconciler.local.simulator import (
    ApiFaults,
    JobDefaults,
    RunwareSimulator,
    SimulatorConfig,
    WebhookFaults,
    WebhookRetry,
)
from reconciler.migrations import apply_baseline, apply_migrations
from reconciler.runware.client import RunwareClient
from tests import process_guard
from tests.processes import ServiceProcess
from tests.standins.postgrest import SERVICE_ROLE_KEY
from tests.standins.supabase import SupabaseStandIn, running_supabase

WEBHOOK_SECRET = "soak-webhook-secret-0123456789abcdef"  # noqa: S105 (a local test secret)

# Records every change of a clip's value, to count duplicate writes (I1 says: at most one).
AUDIT_SQL = """
create table if not exists soak_clip_writes (
    project_id uuid, job_id text, old_value jsonb, new_value jsonb, at timestamptz
);
-- Schema-qualified with its own search_path: it fires inside the reconciler's functions, which
-- run with an empty search_path (see README, "Triggers on projects").
create or replace function public.soak_audit() returns trigger
language plpgsql set search_path = '' as $$
begin
    insert into public.soak_clip_writes
    select new.id, n.key, old.clips -> n.key, n.value, clock_timestamp()
      from jsonb_each(new.clips) n
     where (old.clips -> n.key) is distinct from n.value
       and (old.clips -> n.key) is not null;
    return null;
end $$;
drop trigger if exists soak_audit on public.projects;
create trigger soak_audit after update of clips on public.projects
    for each row execute function public.soak_audit();
"""


@dataclass
class SoakReport:
    jobs: int
    correct: int
    lost: int
    wrong: int
    duplicate_writes: int
    seconds_to_converge_after_last_completion: float
    kills: int
    realtime_drops: int
    webhooks_dropped: int
    webhooks_duplicated: int
    webhooks_early: int
    api_faults: int
    runware_requests: int

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.wrong == 0 and self.duplicate_writes == 0


@dataclass(frozen=True)
class SoakPlan:
    jobs: int = 3000
    projects: int = 300
    submit_seconds: float = 60.0
    kill_every_seconds: float = 15.0
    drop_realtime_every_seconds: float = 7.0
    converge_deadline_seconds: float = 180.0
    seed: int = 11


def _service_env(supabase: SupabaseStandIn, simulator: RunwareSimulator) -> dict[str, str]:
    return {
        "SUPABASE_URL": supabase.url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_ROLE_KEY,
        "RUNWARE_API_KEY": simulator.config.api_key,
        "RUNWARE_API_URL": simulator.url,
        "RUNWARE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "RECONCILER_FIRST_CHECK_DELAY_SECONDS": "2",
        "RECONCILER_POLL_INTERVAL_SECONDS": "0.5",
        "RECONCILER_BACKOFF_BASE_SECONDS": "1",
        "RECONCILER_BACKOFF_CAP_SECONDS": "4",
        "RECONCILER_LEASE_SECONDS": "5",
        "RECONCILER_SWEEP_INTERVAL_SECONDS": "15",
        "RECONCILER_SWEEP_SPREAD_SECONDS": "2",
        "RECONCILER_RUNWARE_REQUESTS_PER_SECOND": "40",
        "RECONCILER_RUNWARE_MAX_RETRIES": "2",
        "RECONCILER_CLAIM_BATCH": "100",
        "RECONCILER_LOG_LEVEL": "warning",
        "RECONCILER_GIVE_UP_SECONDS": "3600",
    }


def _simulator_config(seed: int) -> SimulatorConfig:
    return SimulatorConfig(
        seed=seed,
        jobs=JobDefaults(seconds=0.5, seconds_jitter=6.0, fail_rate=0.1),
        webhooks=WebhookFaults(drop=0.3, duplicate=0.2, early=0.1, shape="mixed"),
        webhook_retry=WebhookRetry(
            first_delay_seconds=0.25, cap_seconds=2.0, max_attempts=6, timeout_seconds=5.0
        ),
        api=ApiFaults(error_rate=0.1, error_statuses=(429, 503), retry_after_seconds=1),
    )


class Replicas:
    """Two service processes on fixed ports, so webhook URLs stay valid across restarts.

    Every process is in `self.processes` from the moment it is spawned (a replacement too,
    before it is ready), so `stop()` stops whatever exists, even in the middle of a restart;
    a restart that is still waiting to spawn when `stop()` runs spawns nothing."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self.processes = [ServiceProcess(dict(env)), ServiceProcess(dict(env))]
        self.kills = 0
        self._stopped = False

    def webhook_url(self, index: int) -> str:
        return f"{self.processes[index].url}/webhooks/runware?token={WEBHOOK_SECRET}"

    async def start(self) -> None:
        # A TaskGroup: if one fails to start, the other's start is cancelled (and kills it).
        async with asyncio.TaskGroup() as group:
            for process in self.processes:
                group.create_task(process.start())

    async def kill_and_restart(self, index: int, down_seconds: float) -> None:
        if self._stopped:
            return
        victim = self.processes[index]
        victim.kill()
        await victim.wait(timeout=10)
        self.kills += 1
        await asyncio.sleep(down_seconds)
        if self._stopped:
            return
        replacement = ServiceProcess(dict(self._env), port=victim.port)
        self.processes[index] = replacement  # owned before it exists: see the class docstring
        try:
            await replacement.start()
        except Exception:
            if not self._stopped:
                raise
            # stop() killed it while it was starting: there is nothing left to restart.

    async def stop(self) -> None:
        self._stopped = True
        # Each stop kills before its first await and cannot fail half-way; all of them run.
        await asyncio.gather(*(p.stop() for p in self.processes))


async def _app(
    plan: SoakPlan,
    simulator: RunwareSimulator,
    replicas: Replicas,
    pool: asyncpg.Pool,
    rng: random.Random,
) -> None:
    """The app: submits jobs (webhook to either replica) and adds them as pending clips, at a
    steady pace and several at a time (a submit answered 429/503 waits out its Retry-After)."""
    projects: list[UUID] = []
    in_flight = asyncio.Semaphore(16)
    interval = plan.submit_seconds / plan.jobs

    async def submit_one(runware: RunwareClient, project: UUID, job: str, replica: int) -> None:
        async with in_flight:
            await runware.submit_video(job, webhook_url=replicas.webhook_url(replica))
            # The app's own atomic write of "pending", after Runware accepted the job: an
            # "early" webhook has arrived by now.
            await pool.execute(
                "update public.projects set clips = clips"
                " || jsonb_build_object($2::text, 'pending') where id = $1",
                project,
                job,
            )

    # A TaskGroup: a failed or cancelled run leaves no submit running behind it.
    async with (
        RunwareClient(simulator.url, simulator.config.api_key, max_retries=8) as runware,
        asyncio.TaskGroup() as submits,
    ):
        for n in range(plan.jobs):
            if len(projects) < plan.projects and (not projects or rng.random() < 0.3):
                project = uuid4()
                await pool.execute(
                    "insert into public.projects (id, clips) values ($1, '{}')", project
                )
                projects.append(project)
            submits.create_task(submit_one(runware, rng.choice(projects), str(uuid4()), n % 2))
            await asyncio.sleep(interval)


async def _chaos(
    plan: SoakPlan, supabase: SupabaseStandIn, replicas: Replicas, rng: random.Random
) -> int:
    """Drops the realtime connection and kills a replica, periodically, until cancelled."""
    drops = 0
    next_kill = time.monotonic() + plan.kill_every_seconds
    try:
        while True:
            await asyncio.sleep(plan.drop_realtime_every_seconds * (0.5 + rng.random()))
            await supabase.realtime.drop_connections()
            drops += 1
            if time.monotonic() >= next_kill:
                await replicas.kill_and_restart(rng.randrange(2), down_seconds=1.0)
                next_kill = time.monotonic() + plan.kill_every_seconds
    except asyncio.CancelledError:
        return drops


async def _compare(pool: asyncpg.Pool, simulator: RunwareSimulator) -> tuple[int, int, int, int]:
    truth = simulator.truth()
    stored: dict[str, str] = {}
    for row in await pool.fetch("select clips::text from public.projects"):
        stored |= json.loads(row["clips"])
    correct = sum(1 for job, value in stored.items() if value == truth.get(job))
    lost = sum(
        1 for job, value in stored.items() if value == "pending" and truth.get(job) != "pending"
    )
    wrong = sum(
        1 for job, value in stored.items() if value != "pending" and value != truth.get(job)
    )
    duplicates = await pool.fetchval(
        "select coalesce(sum(n - 1), 0) from"
        " (select count(*) n from soak_clip_writes group by project_id, job_id) w"
    )
    return correct, lost, wrong, int(duplicates)


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    postgres = LocalPostgres()
    try:
        # Cancelled while starting, `postgres.stop` (below) waits for the start to finish, then
        # stops it: the cluster is ours from before it is started.
        await asyncio.to_thread(postgres.start)
        url = postgres.dsn()
        await apply_baseline(url)
        await apply_migrations(url)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(AUDIT_SQL)
        finally:
            await conn.close()
        yield url
    finally:
        await asyncio.to_thread(postgres.stop)


async def run_soak(plan: SoakPlan, log: bool = True) -> SoakReport:
    def say(message: str) -> None:
        if log:
            print(message, flush=True)

    rng = random.Random(plan.seed)
    async with (
        _database() as database_url,
        RunwareSimulator(_simulator_config(plan.seed)) as simulator,
        running_supabase(database_url) as supabase,
    ):
        replicas = Replicas(_service_env(supabase, simulator))
        pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
        chaos: asyncio.Task[int] | None = None
        try:
            await replicas.start()
            say(
                f"soak: 2 replicas up; submitting {plan.jobs} jobs over {plan.submit_seconds:.0f} s"
            )
            chaos = asyncio.create_task(_chaos(plan, supabase, replicas, rng))
            await _app(plan, simulator, replicas, pool, rng)
            say("soak: all jobs submitted; waiting for Runware to finish them")
            while any(v == "pending" for v in simulator.truth().values()):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            last_completion = max(job.finish_at for job in simulator.jobs())
            chaos.cancel()
            drops = await chaos
            say("soak: every job finished; waiting for the database to converge")
            deadline = time.monotonic() + plan.converge_deadline_seconds
            while time.monotonic() < deadline:
                _, lost, wrong, _ = await _compare(pool, simulator)
                if lost == 0 and wrong == 0:
                    break
                await asyncio.sleep(0.25)
            converged_after = simulator.now() - last_completion
            correct, lost, wrong, duplicates = await _compare(pool, simulator)
            counters = simulator.counters
            return SoakReport(
                jobs=plan.jobs,
                correct=correct,
                lost=lost,
                wrong=wrong,
                duplicate_writes=duplicates,
                seconds_to_converge_after_last_completion=round(max(0.0, converged_after), 2),
                kills=replicas.kills,
                realtime_drops=drops,
                webhooks_dropped=counters.webhook_dropped,
                webhooks_duplicated=counters.webhook_duplicated,
                webhooks_early=counters.webhook_early,
                api_faults=counters.api_faults_injected,
                runware_requests=counters.requests_total,
            )
        finally:
            if chaos is not None:
                # Done already, unless the run failed or was cancelled: no restart outlives it.
                chaos.cancel()
                await asyncio.wait([chaos])
                if not chaos.cancelled():
                    chaos.exception()  # retrieved: the run's own error is the one to report
            await replicas.stop()
            await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=SoakPlan.jobs)
    parser.add_argument("--projects", type=int, default=None)
    parser.add_argument("--submit-seconds", type=float, default=None)
    parser.add_argument("--seed", type=int, default=SoakPlan.seed)
    parser.add_argument(
        "--kill-every", type=float, default=SoakPlan.kill_every_seconds, help="seconds"
    )
    args = parser.parse_args(argv)
    projects = args.projects or max(10, args.jobs // 10)
    submit = args.submit_seconds or max(15.0, args.jobs / 50)
    plan = SoakPlan(
        jobs=args.jobs,
        projects=projects,
        submit_seconds=submit,
        seed=args.seed,
        kill_every_seconds=args.kill_every,
    )
    return process_guard.run_guarded(lambda: _run(plan), "python -m bench.soak")


def _run(plan: SoakPlan) -> int:
    report = asyncio.run(run_soak(plan))
    print(json.dumps(asdict(report), indent=2))
    print(
        f"jobs {report.jobs}  correct {report.correct}  lost {report.lost}  wrong {report.wrong}"
        f"  duplicate writes {report.duplicate_writes}  converged "
        f"{report.seconds_to_converge_after_last_completion} s after the last completion"
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
