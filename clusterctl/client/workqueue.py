"""A de-duplicating work queue of keys, as client-go's ``workqueue`` (rate-limited, delaying).

Guarantees the controllers rely on:
- a key waiting in the queue is there once, however many times it was added (``dirty`` set);
- a key is never handed to two workers at once: added while being processed, it is parked and
  queued again when the worker calls ``done(key)`` — so the newest state is always reconciled;
- ``add_rate_limited(key)`` delays by a per-key exponential backoff that ``forget(key)`` resets;
  ``add_after(key, delay)`` schedules a plain delayed add.

Time comes from an injectable ``clock`` (monotonic seconds): tests move a fake clock and call
``get_nowait()``/``poke()`` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar
from clusterctl.client.wakeup import wait_event

K = TypeVar("K", bound=Hashable)


class QueueShutDown(Exception):
    """``get()`` on a queue that was shut down (workers exit on this)."""


class ExponentialBackoff(Generic[K]):
    """Per-key failure counter: delay = base * 2**failures, capped."""

    def __init__(self, base: float = 0.005, cap: float = 300.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return min(self.cap, self.base * (2 ** n))

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)


class WorkQueue(Generic[K]):
    """See the module docstring. All methods are called from one event loop."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, rate_limiter: ExponentialBackoff[K] | None = None, name: str = "") -> None:
        self.name = name
        self._clock = clock
        self._limiter: ExponentialBackoff[K] = rate_limiter or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._delayed: list[tuple[float, int, K]] = []
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self._shut_down = False

    # ----------------------------------------------------------------- adding

    def add(self, key: K) -> None:
        if self._shut_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done(key): never two workers on one key
        self._queue.append(key)
        self._wakeup.set()

    def add_after(self, key: K, delay: float) -> None:
        if self._shut_down:
            return
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._delayed, (self._clock() + delay, next(self._seq), key))
        self._wakeup.set()  # a waiting get() must recompute how long to sleep

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self._limiter.when(key))

    def forget(self, key: K) -> None:
        """Stop tracking the key's failures: its next rate-limited add starts from the base delay."""
        self._limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._limiter.num_requeues(key)

    # ----------------------------------------------------------------- taking

    def poke(self) -> None:
        """Move delayed keys whose time has come into the queue (tests call this after moving the clock)."""
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self.add(key)

    def get_nowait(self) -> K | None:
        """The next ready key (marked processing), or None."""
        self.poke()
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    async def get(self) -> K:
        """Wait for the next key; the caller must call ``done(key)`` when finished with it."""
        while True:
            if self._shut_down:
                raise QueueShutDown(self.name)
            key = self.get_nowait()
            if key is not None:
                return key
            self._wakeup.clear()
            timeout = None
            if self._delayed:
                timeout = max(0.0, self._delayed[0][0] - self._clock())
            await wait_event(self._wakeup, timeout)

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shut_down:
            self._queue.append(key)
            self._wakeup.set()

    def shutdown(self) -> None:
        self._shut_down = True
        self._wakeup.set()

    # ----------------------------------------------------------------- looking

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def pending_delayed(self) -> int:
        return len(self._delayed)
