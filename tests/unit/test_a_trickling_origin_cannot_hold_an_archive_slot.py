"""An archive attempt runs under a wall-clock deadline and a minimum throughput: an origin that
sends a byte and then nothing (or a byte every few seconds, which no read timeout catches) is
cut after one window and recorded as a failed attempt, counted like any other. Time is a
FakeClock the tests advance, so nothing here depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from reconciler.archive.paths import ObjectPathTemplate
from reconciler.archive.transfer import (
    AttemptLimits,
    Progress,
    StorageUploader,
    TransferFailed,
    within_limits,
)
from reconciler.archive.worker import ArchivePolicy, ArchiveWorker
from reconciler.clips import UrlPolicy
from reconciler.ports import ArchiveTask
from tests.fake_clock import FakeClock
from tests.unit.test_archive_worker_classifies_failures import RecordingStore
from tests.waiting import let_others_run, wait_until

SUPABASE = "https://abc.supabase.co"
PROJECT = UUID("00000000-0000-4000-8000-0000000000bb")
JOB = "6f1c1e4e-5d3a-4b8e-9a51-0c2f7d9e8a11"
MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64
LIMITS = AttemptLimits(deadline_seconds=600, min_bytes_per_second=1024, window_seconds=20)


class Origin:
    """Runware's video host, sending what the test puts in `pieces` (None ends the body),
    and Storage, recording uploads: one MockTransport handler."""

    def __init__(self) -> None:
        self.pieces: asyncio.Queue[bytes | None] = asyncio.Queue()
        # Body pieces the reader has asked for beyond the first: each earlier one was taken.
        self.asked = 0
        self.uploads: list[str] = []
        self.closed = False

    async def _body(self) -> AsyncIterator[bytes]:
        try:
            while True:
                piece = await self.pieces.get()
                if piece is None:
                    return
                yield piece
                self.asked += 1
        finally:
            self.closed = True

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "vm.runware.ai":
            return httpx.Response(200, headers={"content-type": "video/mp4"}, content=self._body())
        self.uploads.append(request.url.path)
        return httpx.Response(200, json={"Key": request.url.path})


def _worker(
    origin: Origin, store: RecordingStore, clock: FakeClock, temp_dir: Path
) -> ArchiveWorker:
    client = httpx.AsyncClient(transport=httpx.MockTransport(origin))
    policy = ArchivePolicy(
        supabase_url=SUPABASE,
        bucket="videos",
        path=ObjectPathTemplate.parse("{project_id}/{job_id}.mp4"),
        max_bytes=1024 * 1024,
        limits=LIMITS,
    )
    return ArchiveWorker(
        store,
        client,
        StorageUploader(client, SUPABASE, "service-key", retries=0),
        UrlPolicy.from_entries(["vm.runware.ai"]),
        policy,
        owner="unit",
        temp_dir=temp_dir,
        rng=random.Random(5),
        clock=clock,
    )


def _taken(origin: Origin, clock: FakeClock, pieces: int) -> Callable[[], bool]:
    """The origin's first `pieces` were read, and the watchdog waits for time to move."""
    return lambda: origin.asked == pieces and clock.sleepers == 1


def _sleeping(clock: FakeClock, sleeps: int) -> Callable[[], bool]:
    """The watchdog went to sleep for the `sleeps`-th time (the checks before it passed)."""
    return lambda: len(clock.slept) == sleeps and clock.sleepers == 1


def _task(attempts: int = 1) -> ArchiveTask:
    return ArchiveTask(PROJECT, JOB, f"https://vm.runware.ai/video/{JOB}.mp4", attempts)


async def test_an_origin_that_stops_after_its_first_bytes_ends_as_a_counted_attempt(
    tmp_path: Path,
) -> None:
    origin, store, clock = Origin(), RecordingStore(), FakeClock()
    worker = _worker(origin, store, clock, tmp_path)
    origin.pieces.put_nowait(MP4[:1])

    attempt = asyncio.create_task(worker.archive(_task()))
    # The byte is taken and the watchdog waits out its window: then a whole window passes.
    await wait_until(_taken(origin, clock, 1))
    clock.advance(LIMITS.window_seconds)
    await asyncio.wait_for(attempt, 30)

    [(task, reason, permanent, _, max_attempts)] = store.failed
    assert task.attempts == 1
    assert not permanent  # counted, and retried later (given up once the attempts run out)
    assert "moved 1 bytes in 20 s, under the minimum of 1024 bytes per second" in reason
    assert max_attempts == 10
    assert worker.counts.outcomes["retried"] == 1
    assert store.succeeded == []
    assert origin.uploads == []
    assert origin.closed  # the connection to the origin was given up
    # And the partial file is removed.
    assert not any(tmp_path.iterdir())  # noqa: ASYNC240


async def test_a_trickle_too_slow_for_the_window_is_cut_though_bytes_keep_coming(
    tmp_path: Path,
) -> None:
    origin, store, clock = Origin(), RecordingStore(), FakeClock()
    worker = _worker(origin, store, clock, tmp_path)
    attempt = asyncio.create_task(worker.archive(_task()))

    # A byte every 2 s: each one long before any read timeout, 10 bytes per 20 s window.
    for sent in range(1, 11):
        origin.pieces.put_nowait(MP4[sent - 1 : sent])
        await wait_until(_taken(origin, clock, sent))
        clock.advance(2)
    await asyncio.wait_for(attempt, 30)

    [(_, reason, permanent, _, _)] = store.failed
    assert "moved 10 bytes in 20 s" in reason
    assert not permanent
    assert store.succeeded == []


async def test_an_origin_fast_enough_in_every_window_is_archived(tmp_path: Path) -> None:
    origin, store, clock = Origin(), RecordingStore(), FakeClock()
    worker = _worker(origin, store, clock, tmp_path)
    attempt = asyncio.create_task(worker.archive(_task()))
    needed = int(LIMITS.min_bytes_per_second * LIMITS.window_seconds)
    video = MP4 + bytes(3 * needed)

    # Three windows, each moving just the minimum, the third from the watchdog's new start.
    for window in range(3):
        origin.pieces.put_nowait(video[window * needed : (window + 1) * needed])
        await wait_until(_taken(origin, clock, window + 1))
        await wait_until(_sleeping(clock, window + 1))
        clock.advance(LIMITS.window_seconds)
    origin.pieces.put_nowait(video[3 * needed :])
    origin.pieces.put_nowait(None)
    await asyncio.wait_for(attempt, 30)

    assert store.failed == []
    assert [archived.size_bytes for _, archived in store.succeeded] == [len(video)]
    assert origin.uploads == [f"/storage/v1/object/videos/{PROJECT}/{JOB}.mp4"]


# --- within_limits on its own -----------------------------------------------------------------


async def test_the_deadline_cuts_an_attempt_that_moves_enough_but_never_ends() -> None:
    clock = FakeClock()
    limits = AttemptLimits(deadline_seconds=30, min_bytes_per_second=0, window_seconds=5)
    cleaned = asyncio.Event()

    async def endless(progress: Progress) -> None:
        try:
            while True:
                progress.moved(10**6)
                await asyncio.sleep(0)
        finally:
            cleaned.set()

    attempt = asyncio.create_task(within_limits(endless, limits, clock))
    await wait_until(lambda: clock.sleepers == 1)
    clock.advance(30)

    with pytest.raises(TransferFailed, match="longer than its deadline of 30 s") as caught:
        await asyncio.wait_for(attempt, 30)
    assert not caught.value.permanent
    assert cleaned.is_set()


async def test_the_deadline_holds_even_while_every_window_is_fast_enough() -> None:
    clock = FakeClock()
    limits = AttemptLimits(deadline_seconds=45, min_bytes_per_second=1, window_seconds=20)

    async def endless(progress: Progress) -> None:
        while True:
            progress.moved(1000)
            await asyncio.sleep(0)

    attempt = asyncio.create_task(within_limits(endless, limits, clock))
    for woken in range(1, 4):
        await wait_until(_sleeping(clock, woken))
        clock.advance(20)

    with pytest.raises(TransferFailed, match="deadline of 45 s"):
        await asyncio.wait_for(attempt, 30)
    # Woken at 20 and 40 (both windows fast enough), then at the deadline.
    assert clock.slept == [20, 20, 5]


async def test_a_result_and_a_failure_pass_through_and_leave_no_watchdog() -> None:
    clock = FakeClock()

    async def works(progress: Progress) -> str:
        return "copied"

    async def breaks(progress: Progress) -> str:
        raise ValueError("disk full")

    assert await within_limits(works, LIMITS, clock) == "copied"
    with pytest.raises(ValueError, match="disk full"):
        await within_limits(breaks, LIMITS, clock)
    await let_others_run()
    assert clock.sleepers == 0


async def test_cancelling_the_attempt_cancels_the_work_and_the_watchdog() -> None:
    """A stop hands the task back uncounted: nothing of the attempt keeps running."""
    clock = FakeClock()
    started, cleaned = asyncio.Event(), asyncio.Event()

    async def slow(progress: Progress) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    attempt = asyncio.create_task(within_limits(slow, LIMITS, clock))
    await started.wait()
    attempt.cancel()

    with pytest.raises(asyncio.CancelledError):
        await attempt
    assert cleaned.is_set()
    await let_others_run()
    assert clock.sleepers == 0


@pytest.mark.parametrize(
    "limits",
    [
        {"deadline_seconds": 0},
        {"window_seconds": 0},
        {"min_bytes_per_second": -1},
    ],
)
def test_nonsense_limits_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="deadline_seconds > 0"):
        AttemptLimits(**limits)  # type: ignore[arg-type]
