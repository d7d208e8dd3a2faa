"""The scheduling queue: which pending pod to try next, and when to try a failed one again.

Three parts, as kube-scheduler's ``PriorityQueue``:
- *active*: a heap ordered by priority (highest first), then by arrival;
- *backoff*: pods that failed recently wait ``initial * 2**(attempts-1)`` (capped) seconds;
- *unschedulable*: pods no node fits. They move back (to backoff, or active once their backoff
  has passed) when the cluster changes in a way that may help — a node added or changed, a pod
  deleted — or after ``unschedulable_timeout`` as a safety net.
A pod that failed while a cluster change arrived during its own cycle goes to backoff, not
unschedulable (otherwise it would miss the event that could make it fit).
Time is an injectable clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass

from clusterctl.scheduler.framework import PodInfo
from clusterctl.client.wakeup import wait_event


@dataclass
class QueuedPod:
    info: PodInfo
    attempts: int = 0
    backoff_until: float = 0.0
    unschedulable_since: float = 0.0
    first_queued: float = 0.0


class SchedulingQueue:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 unschedulable_timeout: float = 60.0) -> None:
        self._clock = clock
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.unschedulable_timeout = unschedulable_timeout
        self._entries: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, int, str]] = []
        self._active_keys: set[str] = set()
        self._backoff: list[tuple[float, int, str]] = []
        self._backoff_keys: set[str] = set()
        self._unschedulable: set[str] = set()
        self._in_flight: set[str] = set()
        self._seq = itertools.count()
        self._wakeup = asyncio.Event()
        self.scheduling_cycle = 0
        self._move_request_cycle = -1
        self._closed = False

    # ----------------------------------------------------------------- arrivals

    def add(self, info: PodInfo) -> None:
        """A new or updated pending pod."""
        entry = self._entries.get(info.key)
        if entry is None:
            self._entries[info.key] = QueuedPod(info, first_queued=self._clock())
            self._push_active(info.key)
            return
        entry.info = info
        if info.key in self._unschedulable:
            # The pod itself changed (e.g. tolerations added): worth another try.
            self._unschedulable.discard(info.key)
            self._to_backoff_or_active(info.key)

    def delete(self, key: str) -> None:
        self._entries.pop(key, None)
        self._unschedulable.discard(key)
        self._active_keys.discard(key)
        self._backoff_keys.discard(key)

    def move_all_to_active_or_backoff(self) -> None:
        """The cluster changed in a way that may let unschedulable pods fit."""
        for key in list(self._unschedulable):
            self._unschedulable.discard(key)
            self._to_backoff_or_active(key)
        self._move_request_cycle = self.scheduling_cycle

    # ----------------------------------------------------------------- outcomes

    def done(self, key: str) -> None:
        """The cycle for this pod finished (it was bound or assumed); forget it."""
        self._in_flight.discard(key)
        self._entries.pop(key, None)

    def add_unschedulable(self, info: PodInfo) -> None:
        key = info.key
        self._in_flight.discard(key)
        entry = self._entries.get(key)
        if entry is None:
            return  # deleted or bound meanwhile
        entry.info = info
        entry.attempts += 1
        entry.backoff_until = self._clock() + self.backoff_for(entry.attempts)
        if self._move_request_cycle >= self.scheduling_cycle:
            self._to_backoff_or_active(key)
        else:
            entry.unschedulable_since = self._clock()
            self._unschedulable.add(key)

    def add_backoff(self, info: PodInfo) -> None:
        """A transient failure (e.g. binding error): retry after backoff."""
        key = info.key
        self._in_flight.discard(key)
        entry = self._entries.setdefault(key, QueuedPod(info, first_queued=self._clock()))
        entry.info = info
        entry.attempts += 1
        entry.backoff_until = self._clock() + self.backoff_for(entry.attempts)
        self._to_backoff_or_active(key)

    def backoff_for(self, attempts: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** max(0, attempts - 1))

    # ----------------------------------------------------------------- taking

    def flush(self) -> None:
        """Move due backoff pods to active, and long-unschedulable pods back into play."""
        now = self._clock()
        while self._backoff and self._backoff[0][0] <= now:
            _, _, key = heapq.heappop(self._backoff)
            if key in self._backoff_keys:
                self._backoff_keys.discard(key)
                self._push_active(key)
        for key in [k for k in self._unschedulable if now - self._entries[k].unschedulable_since >= self.unschedulable_timeout]:
            self._unschedulable.discard(key)
            self._to_backoff_or_active(key)

    def pop_nowait(self) -> QueuedPod | None:
        self.flush()
        while self._active:
            _, _, key = heapq.heappop(self._active)
            if key not in self._active_keys:
                continue  # stale heap entry (deleted or moved)
            self._active_keys.discard(key)
            entry = self._entries.get(key)
            if entry is None:
                continue
            self._in_flight.add(key)
            self.scheduling_cycle += 1
            return entry
        return None

    async def pop(self) -> QueuedPod:
        while True:
            if self._closed:
                raise asyncio.CancelledError
            entry = self.pop_nowait()
            if entry is not None:
                return entry
            self._wakeup.clear()
            timeout = None
            if self._backoff:
                timeout = max(0.001, self._backoff[0][0] - self._clock())
            if self._unschedulable:
                timeout = min(timeout or self.unschedulable_timeout, self.unschedulable_timeout / 4)
            await wait_event(self._wakeup, timeout)

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    # ----------------------------------------------------------------- internals

    def _push_active(self, key: str) -> None:
        entry = self._entries[key]
        if key in self._active_keys or key in self._in_flight:
            return
        self._active_keys.add(key)
        heapq.heappush(self._active, (-entry.info.priority, next(self._seq), key))
        self._wakeup.set()

    def _to_backoff_or_active(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None or key in self._active_keys or key in self._backoff_keys:
            return
        if entry.backoff_until > self._clock():
            self._backoff_keys.add(key)
            heapq.heappush(self._backoff, (entry.backoff_until, next(self._seq), key))
            self._wakeup.set()
        else:
            self._push_active(key)

    # ----------------------------------------------------------------- looking

    @property
    def pending(self) -> dict[str, int]:
        return {"active": len(self._active_keys), "backoff": len(self._backoff_keys), "unschedulable": len(self._unschedulable)}

    def is_unschedulable(self, key: str) -> bool:
        return key in self._unschedulable
