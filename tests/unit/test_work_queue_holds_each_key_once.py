"""The keyed work queue: a key is held once, never handed to two workers at once, and a key
added while being worked on runs once more afterwards."""

from __future__ import annotations

import asyncio

import pytest

from reconciler.workqueue import QueueShutDown, WorkQueue
from tests.waiting import let_others_run


async def test_a_key_added_many_times_is_held_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for _ in range(5):
        queue.add("a")
    queue.add("b")

    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]
    assert len(queue) == 0


async def test_a_key_in_progress_is_not_handed_out_again() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    first = await queue.get()
    queue.add("a")  # re-added while a worker holds it

    second_worker = asyncio.create_task(queue.get())
    await let_others_run()  # let the second worker block (it must not get "a")
    assert not second_worker.done()
    assert queue.in_progress == 1

    queue.done(first)  # the dirty key goes back in once
    assert await asyncio.wait_for(second_worker, 1) == "a"
    queue.done("a")
    assert len(queue) == 0


async def test_done_without_re_add_does_not_requeue() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    queue.done(await queue.get())
    assert len(queue) == 0
    assert queue.in_progress == 0


async def test_shut_down_wakes_every_waiting_worker() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = [asyncio.create_task(queue.get()) for _ in range(3)]
    await let_others_run()
    queue.add("dropped")

    queue.shut_down()

    for task in waiting:
        with pytest.raises(QueueShutDown):
            await asyncio.wait_for(task, 1)
    queue.add("ignored")
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(queue.get(), 1)
