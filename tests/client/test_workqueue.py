"""The work queue's promises: de-duplication, one worker per key, re-run after re-add, backoff."""

from __future__ import annotations

import asyncio

import pytest

from clusterctl.client.workqueue import ExponentialBackoff, QueueShutDown, WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_duplicate_adds_are_queued_once() -> None:
    q: WorkQueue[str] = WorkQueue()
    for _ in range(3):
        q.add("ns/a")
    q.add("ns/b")
    assert len(q) == 2
    assert q.get_nowait() == "ns/a"
    assert q.get_nowait() == "ns/b"
    assert q.get_nowait() is None


def test_key_added_while_processing_is_not_handed_out_until_done() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add("k")
    assert q.get_nowait() == "k"
    q.add("k")  # the object changed while a worker is reconciling it
    q.add("k")
    assert q.get_nowait() is None, "a second worker must not get a key that is being processed"
    q.done("k")
    assert q.get_nowait() == "k", "the re-added key runs again after done()"
    q.done("k")
    assert q.get_nowait() is None


async def test_concurrent_workers_never_share_a_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    active: set[str] = set()
    overlaps: list[str] = []
    runs: dict[str, int] = {}

    async def worker() -> None:
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            if key in active:
                overlaps.append(key)
            active.add(key)
            runs[key] = runs.get(key, 0) + 1
            await asyncio.sleep(0.001)
            active.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(4)]
    for round_ in range(20):
        for k in ("a", "b", "c"):
            q.add(k)
        await asyncio.sleep(0.0005)
    await asyncio.sleep(0.05)
    q.shutdown()
    await asyncio.gather(*workers)
    assert overlaps == []
    assert set(runs) == {"a", "b", "c"}


def test_rate_limited_requeue_backs_off_exponentially_per_key_and_forget_resets() -> None:
    clock = FakeClock()
    q: WorkQueue[str] = WorkQueue(clock=clock, rate_limiter=ExponentialBackoff(base=1.0, cap=10.0))
    q.add_rate_limited("k")  # 1 s
    assert q.get_nowait() is None
    clock.now += 0.99
    assert q.get_nowait() is None
    clock.now += 0.02
    assert q.get_nowait() == "k"
    q.done("k")
    q.add_rate_limited("k")  # 2 s
    clock.now += 1.5
    assert q.get_nowait() is None
    clock.now += 0.6
    assert q.get_nowait() == "k"
    q.done("k")
    assert q.num_requeues("k") == 2
    limiter: ExponentialBackoff[str] = ExponentialBackoff(base=1.0, cap=10.0)
    assert [limiter.when("other") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")  # back to 1 s
    clock.now += 1.01
    assert q.get_nowait() == "k"


async def test_get_wakes_up_for_a_delayed_key() -> None:
    q: WorkQueue[str] = WorkQueue()
    q.add_after("later", 0.05)
    key = await asyncio.wait_for(q.get(), 30)
    assert key == "later"


async def test_shutdown_releases_waiting_workers() -> None:
    q: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(QueueShutDown):
        await asyncio.wait_for(waiter, 30)
