"""The store contract every backend implements, and its errors.

Shaped after kine/etcd: a single global revision counter (never reused) orders every write;
each key remembers the revision that last modified it (``mod_revision``), which the API server
exposes as ``metadata.resourceVersion``. Writes are compare-and-set on that revision. Watches
replay history after a revision and then stream; asking for history that was compacted raises
``Compacted`` (the API answers 410 Gone and clients re-list).

Keys look like ``/registry/<group>/<resource>/<namespace>/<name>`` (``core`` for the empty
group, no namespace segment for cluster-scoped kinds). Values are JSON-able dicts; a backend never
interprets them, and never mutates a dict it was given or returned (callers copy if they need to).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator, Literal, Protocol

import orjson

from clusterctl.errors import ClusterctlError


class StoreError(ClusterctlError):
    """The store failed (I/O error, corrupt log, backend unreachable)."""


class StoreUnavailable(StoreError):
    """The backend could not serve a request now (etcd without a leader, a member down, overload).

    ``retry_after`` (seconds) is a hint for the client (HTTP 503 + Retry-After). ``outcome_unknown``
    is True for a write that may or may not have been applied.
    """

    def __init__(self, message: str, *, retry_after: int = 1, outcome_unknown: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.outcome_unknown = outcome_unknown


class KeyExists(StoreError):
    """create() of a key that exists."""

    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFound(StoreError):
    """update()/delete() of a key that does not exist."""

    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class RevisionConflict(StoreError):
    """Compare-and-set failed: the key was modified since ``expected``; carries the current item."""

    def __init__(self, key: str, expected: int, current: "Item"):
        super().__init__(f"conflict on {key}: expected revision {expected}, current {current.mod_revision}")
        self.key = key
        self.expected = expected
        self.current = current


class Compacted(StoreError):
    """A watch or list asked for a revision older than the retained history."""

    def __init__(self, requested: int, compact_revision: int):
        super().__init__(f"revision {requested} is compacted (oldest retained: {compact_revision})")
        self.requested = requested
        self.compact_revision = compact_revision


class WatchOverflow(Compacted):
    """A watcher fell too far behind (its bounded buffer filled) and was ended.

    Raised by the watch iterator after the events buffered before the overflow were delivered.
    A ``Compacted`` so callers that map Compacted to 410 Gone stay correct (the client re-lists);
    a caller may instead re-watch from ``requested``, the last revision it was given.
    """

    def __init__(self, last_revision: int, buffered: int):
        StoreError.__init__(self, f"watch fell more than {buffered} events behind after revision "
                                  f"{last_revision} and was ended; re-watch from there or re-list")
        self.requested = last_revision
        self.compact_revision = last_revision


class FutureRevision(StoreError):
    """A revision newer than the store's current one was asked for."""


class CorruptLog(StoreError):
    """The write-ahead log or snapshot is damaged in a way recovery must not paper over."""


class Item:
    """One key's state. ``value`` is a dict; ``raw`` the same value as compact JSON bytes when the
    backend has them (the API serialises without encoding again).

    A backend may keep only ``raw`` (the tinydb store does, for memory: a pod is ~1 KB as JSON
    and ~8 KB as dicts): then ``value`` decodes it on each access and is not kept — each access
    returns a fresh dict, so read it once per use. Equality compares key, value and revisions.
    """

    __slots__ = ("key", "_value", "mod_revision", "create_revision", "raw")

    def __init__(self, key: str, value: dict | None, mod_revision: int, create_revision: int,
                 raw: bytes | None = None):
        if value is None and raw is None:
            raise ValueError(f"item {key}: a value or its JSON is required")
        self.key = key
        self._value = value
        self.mod_revision = mod_revision
        self.create_revision = create_revision
        self.raw = raw

    @property
    def value(self) -> dict:
        value = self._value
        return orjson.loads(self.raw) if value is None else value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Item):
            return NotImplemented
        return (self.key, self.mod_revision, self.create_revision) == \
            (other.key, other.mod_revision, other.create_revision) and self.value == other.value

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Item(key={self.key!r}, mod_revision={self.mod_revision}, create_revision={self.create_revision})"


EventType = Literal["PUT", "DELETE"]


class Event:
    """One change. For DELETE, ``value`` is the last value before deletion.

    Like ``Item``, built from dicts or from JSON bytes (``raw``, ``prev_raw``); decoded values are
    kept once decoded (an event is short-lived and may be read by many watchers).
    """

    __slots__ = ("type", "key", "_value", "revision", "_prev_value", "created", "raw", "prev_raw")

    def __init__(self, type: EventType, key: str, value: dict | None, revision: int,
                 prev_value: dict | None = None, created: bool = False, *,
                 raw: bytes | None = None, prev_raw: bytes | None = None):
        self.type = type
        self.key = key
        self._value = value
        self.revision = revision
        self._prev_value = prev_value
        self.created = created  # PUT that created the key (ADDED vs MODIFIED)
        self.raw = raw
        self.prev_raw = prev_raw

    @property
    def value(self) -> dict:
        if self._value is None:
            self._value = orjson.loads(self.raw) if self.raw is not None else {}
        return self._value

    @property
    def prev_value(self) -> dict | None:
        if self._prev_value is None and self.prev_raw is not None:
            self._prev_value = orjson.loads(self.prev_raw)
        return self._prev_value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.type, self.key, self.revision, self.created, self.value, self.prev_value) == \
            (other.type, other.key, other.revision, other.created, other.value, other.prev_value)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Event({self.type}, {self.key!r}, revision={self.revision}, created={self.created})"


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Item]
    revision: int          # the store revision the list is consistent with
    more: bool = False     # a limit cut the list; continue after items[-1].key


class Store(Protocol):
    """What the API server needs from a backend. All methods are coroutines except where noted."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    @property
    def revision(self) -> int: ...

    async def get(self, key: str) -> Item | None: ...

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None,
                   revision: int | None = None) -> ListResult:
        """Items under ``prefix`` in key order, after ``start_after``, at most ``limit``.

        ``revision=None`` lists the current state. An older revision is listed exactly as it
        was while it is retained (both backends), else ``Compacted``; a newer one raises
        ``FutureRevision``. Paging: pass the first page's ``ListResult.revision`` back.
        """

    async def create(self, key: str, value: dict) -> Item:
        """Raises KeyExists. Returns the stored item (durable when this returns)."""

    async def update(self, key: str, value: dict, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Durable when this returns."""

    async def delete(self, key: str, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Returns the deleted item (revision = delete's)."""

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """Events with revision > after_revision under prefix, then live ones, in order.

        Raises Compacted (on first iteration) when after_revision < the compaction point.
        A slow consumer must not stall writers or other watchers: a backend may end a watch
        that falls too far behind, with ``WatchOverflow`` (the client re-watches from its last
        revision). A watch ends normally when the store closes. Call ``aclose()`` when done.
        """
        ...

    async def compact(self, revision: int | None = None) -> int:
        """Forget history up to ``revision`` (default: current); returns the compaction revision."""

    def status(self) -> dict:
        """Figures for ``clusterctl store status`` and health pages (backend, revision, ...)."""
