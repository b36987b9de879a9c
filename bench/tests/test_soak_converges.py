"""The short soak: two replicas on the Supabase transport, every fault at once (dropped,
duplicated and early webhooks, 429/503 from Runware, realtime drops, SIGKILLed replicas, the
app adding clips meanwhile) — and every clip ends as the simulator's truth, written once."""

from __future__ import annotations

import pytest

from bench.soak import SoakPlan, run_soak
from tests.standins.realtime import IGNORE_WEBSOCKETS_DEPRECATIONS


@IGNORE_WEBSOCKETS_DEPRECATIONS
@pytest.mark.timeout(240)
async def test_short_soak_loses_nothing() -> None:
    plan = SoakPlan(
        jobs=300,
        projects=30,
        submit_seconds=15,
        kill_every_seconds=5,
        drop_realtime_every_seconds=4,
        converge_deadline_seconds=90,
    )

    report = await run_soak(plan, log=False)

    print(report)
    assert report.kills >= 2
    assert report.realtime_drops >= 2
    assert report.webhooks_dropped > 0
    assert report.webhooks_early > 0
    assert report.api_faults > 0
    assert (report.lost, report.wrong, report.duplicate_writes) == (0, 0, 0)
    assert report.correct == report.jobs
