"""wait_event never loses a cancellation (asyncio.wait_for on Python 3.11 can)."""

from __future__ import annotations

import asyncio

from clusterctl.client.wakeup import wait_event


async def test_set_timeout_and_already_set():
    ev = asyncio.Event()
    assert await wait_event(ev, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, ev.set)
    assert await wait_event(ev, 5) is True
    assert await wait_event(ev, 0) is True


async def test_cancel_arriving_as_the_event_is_set_still_cancels():
    """The race that made `clusterctl sim` and test fixtures hang: a loop that waits on an event
    is cancelled in the same loop iteration that sets the event. The loop must end."""
    for _ in range(200):
        ev = asyncio.Event()
        rounds = 0

        async def loop_forever():
            nonlocal rounds
            while True:
                rounds += 1
                ev.clear()
                await wait_event(ev, 10)  # a finite timeout: the case 3.11 wait_for gets wrong

        task = asyncio.create_task(loop_forever())
        await asyncio.sleep(0)
        ev.set()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=30)
        assert task in done and task.cancelled()
