"""Fan-out of store events to watchers, each with its own bounded buffer.

Both backends deliver events this way: the producer (the tinydb writer after a commit, or the
one shared etcd watch stream of a prefix) hands each batch to every subscribed ``Subscriber``
synchronously, never waiting for a consumer; each consumer drains its own buffer at its own
pace through ``deliver``. A consumer that is still holding ``limit`` undelivered events when the
next batch arrives has fallen behind: it gets what was buffered, then ``WatchOverflow`` (it
re-watches from its last revision), so one slow watcher never stalls writers or other watchers.
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Hashable, Iterable

from clusterctl.store.base import Event, StoreError, WatchOverflow


@dataclass(frozen=True, slots=True)
class Trigger:
    """An index for one watcher (kube-apiserver's "indexed triggers"): only events under ``scope``
    whose value or previous value has ``extract(key, value) == value`` can concern it — e.g. a
    node agent's pod watch with ``spec.nodeName=node-7``. The producer computes ``extract`` once
    per event for all watchers sharing ``(scope, name)`` and offers each event only to the
    watchers indexed under its values, so a pod event costs one lookup, not one match per node
    agent. Still a pre-filter: the watcher applies its full selector to what it gets."""

    scope: str
    name: Hashable
    extract: Callable[[str, dict | None], Hashable]
    value: Hashable
    #: ``extract`` reads only the key (e.g. the object's name): called with ``None`` for the
    #: value, so nothing is decoded, and the previous value is not consulted
    by_key: bool = False

    def values_of(self, key: str, value: Callable[[], dict], prev: Callable[[], dict | None]) -> set:
        """The index values an event touches (its value's and, if any, its previous value's)."""
        if self.by_key:
            return {self.extract(key, None)}
        found = {self.extract(key, value())}
        before = prev()
        if before is not None:
            found.add(self.extract(key, before))
        return found


class WatcherIndex:
    """The watchers of one event producer: plain ones get every event; those with a ``Trigger``
    are indexed by ``(scope, name)`` and value, so an event reaches only the watchers of the values
    it touches (``targets``). Used by the tinydb store and the API's shared watch cache."""

    def __init__(self) -> None:
        self.plain: set = set()
        self.groups: dict[tuple[str, Hashable], tuple[Trigger, dict[Hashable, set]]] = {}

    def add(self, watcher, trigger: Trigger | None = None) -> None:
        if trigger is None:
            self.plain.add(watcher)
            return
        group = self.groups.get((trigger.scope, trigger.name))
        if group is None:
            group = self.groups[(trigger.scope, trigger.name)] = (trigger, {})
        group[1].setdefault(trigger.value, set()).add(watcher)

    def discard(self, watcher, trigger: Trigger | None = None) -> None:
        if trigger is None:
            self.plain.discard(watcher)
            return
        group = self.groups.get((trigger.scope, trigger.name))
        if group is None:
            return
        watchers = group[1].get(trigger.value)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del group[1][trigger.value]
        if not group[1]:
            del self.groups[(trigger.scope, trigger.name)]

    def all(self) -> list:
        found = list(self.plain)
        for _, by_value in self.groups.values():
            for watchers in by_value.values():
                found.extend(watchers)
        return found

    def clear(self) -> None:
        self.plain.clear()
        self.groups.clear()

    @staticmethod
    def touched(trigger: Trigger, by_value: dict, event: Event) -> Iterable[Hashable]:
        """The indexed values ``event`` concerns: its value's and previous value's (every indexed
        value when ``extract`` cannot read it — better a spurious event than a lost one)."""
        try:
            return trigger.values_of(event.key, lambda: event.value, lambda: event.prev_value if event.type == "PUT" else None)
        except Exception:  # noqa: BLE001
            return list(by_value)


class Subscriber:
    """One watcher's buffer and state, filled by a producer, drained by ``deliver``."""

    __slots__ = ("prefix", "buffer", "limit", "wake", "overflowed", "closed", "error", "last_revision", "seen",
                 "reached")

    def __init__(self, prefix: str, limit: int, after_revision: int, replay: Iterable[Event] = (),
                 seen: int = 0):
        self.prefix = prefix
        self.buffer: collections.deque[Event] = collections.deque(replay)
        self.limit = limit
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.error: StoreError | None = None
        self.last_revision = after_revision
        #: the newest revision of any batch offered (under this prefix or not): with an empty
        #: buffer, every event of this prefix up to ``seen`` has been delivered
        self.seen = seen
        #: for a triggered watcher (offered only its own events): the producer's newest revision
        #: offered to anyone, read when asked instead of written to every watcher per batch
        self.reached: Callable[[], int] | None = None

    def offer(self, events: list[Event]) -> bool:
        """Buffer one batch's events under the prefix; False when the watcher has fallen behind.

        A batch is always taken whole (a fast watcher cannot drain in the middle of one), so the
        buffer holds at most ``limit`` plus one batch.
        """
        if len(self.buffer) >= self.limit:
            self.overflowed = True
            self.wake.set()
            return False
        prefix = self.prefix
        if events:
            self.seen = events[-1].revision
        before = len(self.buffer)
        self.buffer.extend(event for event in events if event.key.startswith(prefix))
        if len(self.buffer) != before:
            self.wake.set()
        return True

    def end(self, error: StoreError | None = None) -> None:
        """The producer is done: end normally, or with ``error``, once the buffer is drained."""
        self.closed = True
        self.error = error
        self.wake.set()


class WatchStream:
    """A store watch: an async iterator of events that can also tell how far it has got.

    ``progress()`` is a revision R such that every event of the watched prefix with revision
    <= R has already been yielded — possibly newer than the last event yielded (writes to other
    prefixes advance it) — or None when that is not known right now (events still buffered,
    history still replaying). The API server puts it in BOOKMARK events.
    """

    __slots__ = ("_gen", "subscriber", "replaying")

    def __init__(self) -> None:
        self._gen: AsyncIterator[Event] | None = None
        self.subscriber: Subscriber | None = None
        self.replaying = True

    def attach(self, gen: AsyncIterator[Event]) -> "WatchStream":
        self._gen = gen
        return self

    def __aiter__(self) -> "WatchStream":
        return self

    def __anext__(self):
        return self._gen.__anext__()

    async def aclose(self) -> None:
        await self._gen.aclose()

    def progress(self) -> int | None:
        sub = self.subscriber
        if sub is None or self.replaying or sub.buffer or sub.overflowed or sub.error is not None:
            return None
        return max(sub.last_revision, sub.seen if sub.reached is None else sub.reached())


async def deliver(subscriber: Subscriber, after_revision: int) -> AsyncIterator[Event]:
    """The subscriber's events with revision > ``after_revision``, in order, as they come."""
    while True:
        while subscriber.buffer:
            event = subscriber.buffer.popleft()
            if event.revision <= after_revision:
                continue  # replay overlap, or a watch from a future revision starting there
            subscriber.last_revision = event.revision
            yield event
        if subscriber.overflowed:
            raise WatchOverflow(subscriber.last_revision, subscriber.limit)
        if subscriber.closed:
            if subscriber.error is not None:
                raise subscriber.error
            return
        subscriber.wake.clear()
        await subscriber.wake.wait()
