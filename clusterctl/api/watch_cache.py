"""One store watch per kind, fanned out to every API watcher of that kind (kube-apiserver's "cacher").

With the etcd backend each store watch is a gateway stream that etcd encodes per watcher; a
hundred ``kubectl get -w``/informer watches on pods would be a hundred etcd watches. A
``KindFeed`` holds one store watch on the kind's whole prefix and a window of recent events; an API
watch subscribes at its start revision and gets the window's replay then live events, filtered by
its own prefix (namespace). A watch asking for a revision before the window falls back to a direct
store watch (which answers 410 when that history is compacted). A subscriber that falls
``buffer`` events behind is ended (its client re-watches from the last revision it got); a feed
whose store watch ends closes its subscribers the same way, and the next watch starts a new feed.

A watch with an indexable field selector (``spec.nodeName=X``: a node agent) subscribes under a
``fanout.Trigger``: the feed offers each event only to the subscribers indexed under its value or
previous value, as the tinydb store does, instead of to every subscriber of the kind.

Used for the etcd backend (``watch_cache: auto``); the tinydb store already fans out in memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import AsyncIterator

from clusterctl.store.base import Event, WatchOverflow
from clusterctl.store.fanout import Trigger, WatcherIndex

log = logging.getLogger("clusterctl.api.watch_cache")


class _Subscriber:
    __slots__ = ("prefix", "buffer", "limit", "wake", "overflowed", "closed", "last_revision")

    def __init__(self, prefix: str, limit: int, after: int):
        self.prefix, self.limit, self.last_revision = prefix, limit, after
        self.buffer: collections.deque[Event] = collections.deque()
        self.wake = asyncio.Event()
        self.overflowed = self.closed = False

    def offer(self, event: Event) -> None:
        if not event.key.startswith(self.prefix) or event.revision <= self.last_revision:
            return
        if len(self.buffer) >= self.limit:
            self.overflowed = True
        else:
            self.buffer.append(event)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class KindFeed:
    def __init__(self, store, prefix: str, *, window: int = 10_000, buffer: int = 5_000):
        self.store, self.prefix, self.window, self.buffer = store, prefix, window, buffer
        self.start = store.revision
        self.complete_after = self.start     # every event with a revision above this is in ``events``
        self.events: collections.deque[Event] = collections.deque()
        self.subscribers = WatcherIndex()
        self.closed = False
        self.task = asyncio.create_task(self._run(), name=f"watch-feed {prefix}")

    async def _run(self) -> None:
        try:
            async for event in self.store.watch(self.prefix, after_revision=self.start):
                self.events.append(event)
                if len(self.events) > self.window:
                    self.complete_after = self.events.popleft().revision
                for sub in list(self.subscribers.plain):
                    sub.offer(event)
                for trigger, by_value in list(self.subscribers.groups.values()):
                    for value in WatcherIndex.touched(trigger, by_value, event):
                        for sub in list(by_value.get(value, ())):
                            sub.offer(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the feed ends; subscribers re-watch, a new feed starts
            log.info("watch feed %s ended: %s", self.prefix, exc)
        finally:
            self.closed = True
            for sub in self.subscribers.all():
                sub.close()

    def discard(self, sub: _Subscriber, trigger: Trigger | None) -> None:
        self.subscribers.discard(sub, trigger)

    def subscribe(self, prefix: str, after: int, trigger: Trigger | None = None) -> _Subscriber | None:
        """A subscriber replaying events after ``after``; None when the window does not reach back."""
        if self.closed or after < self.complete_after:
            return None
        sub = _Subscriber(prefix, self.buffer, after)
        for event in self.events:
            if trigger is None or trigger.value in _values(trigger, event):
                sub.offer(event)
        self.subscribers.add(sub, trigger)
        return sub


class WatchCache:
    def __init__(self, store):
        self.store = store
        self.feeds: dict[str, KindFeed] = {}

    def watch(self, kind_prefix: str, prefix: str, *, after_revision: int,
              trigger: Trigger | None = None) -> AsyncIterator[Event]:
        """Events under ``prefix`` after ``after_revision``; with ``trigger``, only those whose value
        or previous value match its index (a pre-filter: the caller still applies its selector)."""
        feed = self.feeds.get(kind_prefix)
        if feed is None or feed.closed:
            feed = self.feeds[kind_prefix] = KindFeed(self.store, kind_prefix)
        sub = feed.subscribe(prefix, after_revision, trigger)
        if sub is None:
            return self.store.watch(prefix, after_revision=after_revision)
        return self._iterate(feed, sub, trigger)

    @staticmethod
    async def _iterate(feed: KindFeed, sub: _Subscriber, trigger: Trigger | None = None) -> AsyncIterator[Event]:
        try:
            while True:
                while sub.buffer:
                    event = sub.buffer.popleft()
                    sub.last_revision = event.revision
                    yield event
                if sub.overflowed:
                    raise WatchOverflow(sub.last_revision, sub.limit)
                if sub.closed:
                    return
                sub.wake.clear()
                await sub.wake.wait()
        finally:
            feed.discard(sub, trigger)

    async def close(self) -> None:
        for feed in self.feeds.values():
            feed.task.cancel()
        await asyncio.gather(*(f.task for f in self.feeds.values()), return_exceptions=True)


def _values(trigger: Trigger, event: Event) -> set:
    try:
        return trigger.values_of(event.key, lambda: event.value,
                                 lambda: event.prev_value if event.type == "PUT" else None)
    except Exception:  # noqa: BLE001 - cannot index it: treat it as concerning everyone
        return {trigger.value}


