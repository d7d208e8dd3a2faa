"""``wait_event(event, timeout)``: sleep until an ``asyncio.Event`` is set or a deadline passes.

Every loop that sleeps "until woken or until the next timer" (work queues, the scheduling queue,
hollow nodes' timers) uses this instead of ``asyncio.wait_for(event.wait(), timeout)``: on
Python 3.11, ``wait_for`` returns normally when a cancellation arrives at the moment the inner
wait completes, so the cancel is lost and the loop never stops (a Ctrl-C that hangs). Here the
caller's cancellation always propagates.
"""

from __future__ import annotations

import asyncio


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """True when ``event`` was set, False when ``timeout`` (seconds; None = forever) passed first."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        done, _ = await asyncio.wait({waiter}, timeout=timeout)
    finally:
        waiter.cancel()
    return bool(done)
