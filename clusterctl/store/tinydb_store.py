"""The embedded ``tinydb`` backend: an in-memory index, a group-committed WAL, a TinyDB snapshot.

Why this shape (DESIGN.md, "Store"): TinyDB rewrites its whole file per write, so it cannot take
API writes one by one. Instead:

- **The in-memory index is the truth while running** (key -> ``Item``, plus a sorted key list for
  prefix listing and paging with ``bisect``).
- **Every acknowledged write is first appended to the write-ahead log and fsync'd** (``wal.py``).
  Writers hand framed records to the log's own thread (``group_commit.py``), which appends
  whatever accumulated while the previous fsync ran and fsyncs once for all of them (group
  commit), so the event loop never blocks on the disk and no per-batch hand-off is needed. Only
  after the fsync does the write touch memory (in log order, on the loop), reach watchers and
  return; if the append fails (disk full, I/O error) the callers get ``StoreError`` with the OS
  message and nothing of it is applied.
- Compare-and-set checks see writes that are queued but not yet durable (a pending overlay), so
  concurrent writes to one key serialise exactly as their revisions say; reads see only durable,
  applied state.
- **A global revision counter** orders writes (kine-style, never a reused row id); it is the
  ``resourceVersion``. It is persisted by the log records and the snapshot's meta.
- **A bounded event history** (count and age) serves watches and lists at older revisions; what
  falls out of it is compacted (``Compacted`` -> 410 Gone).
- **The snapshot** (``snapshot.py``) is the index written through TinyDB in one flush, in another
  thread, after rotating the log to a new segment; once it is durably renamed into place, the
  segments it covers are deleted. Recovery (``recovery.py``) = snapshot + log replay, correct after a
  crash at any point of that sequence.

Watches: each watcher has its own bounded buffer filled synchronously when a batch is applied;
a watcher that does not drain it is ended with ``WatchOverflow`` instead of slowing anyone down.
Only one process may open a data directory (``LOCK``, flock).
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import gc
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable, Hashable

import orjson

from clusterctl.store.base import (
    Compacted,
    Event,
    FutureRevision,
    Item,
    KeyExists,
    KeyNotFound,
    ListResult,
    RevisionConflict,
    StoreError,
)
from clusterctl.store.fanout import Subscriber, Trigger, WatcherIndex, WatchStream, deliver
from clusterctl.store.group_commit import GroupCommitter
from clusterctl.store.recovery import Change, RecoveredState, compact_json, make_change, recover
from clusterctl.store.snapshot import SNAPSHOT_NAME, write_snapshot
from clusterctl.store.wal import SegmentWriter, WalFailed, frame, remove_segments_through, segment_name

log = logging.getLogger(__name__)

LOCK_NAME = "LOCK"
GC_FREEZE_EVERY = 1000  # writes between gc.freeze() calls (see freeze_gc)
MAX_BATCH = 1024  # log records per fsync; bounds a watcher's buffer overshoot (fanout.py) too


class StoreLocked(StoreError):
    """Another process has the data directory open."""


class _NotRun(StoreError):
    """A log-thread call queued behind a failed append was dropped with the writes behind it."""


def lock_data_dir(data_dir: Path) -> int:
    """Take the data directory's exclusive lock; returns the fd to keep (closing it unlocks)."""
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StoreLocked(f"store data directory {data_dir} is in use by pid {holder}") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


@dataclass(slots=True)
class _Mutation:
    """A write waiting for its log record to be durable."""

    key: str
    revision: int
    item: Item | None          # the new item (None for a delete)
    prev: Item | None          # what it replaces (the deleted item for a delete)
    encoded: bytes | None      # the new value's JSON (None for a delete)
    future: asyncio.Future


class TinyDBStore:
    """The embedded store. See the module docstring; ``clusterctl.store.base`` for the contract."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        history_events: int = 20_000,
        history_seconds: float = 300.0,
        watch_buffer: int = 5_000,
        snapshot_log_bytes: int = 16 * 1024 * 1024,
        snapshot_log_records: int = 20_000,
        snapshot_on_close: bool = True,
        freeze_gc: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        """``freeze_gc`` (process-wide, so the API server may prefer to own this policy): stored
        values are dozens of small containers each, and CPython's full collections walk every
        tracked object each time the long-lived population grows by 25 %: at 10k pods that is a
        50-150 ms stall of the event loop every few thousand writes, the bulk of mutation p99.
        With ``freeze_gc`` the store moves the process's objects out of the collector's reach
        (``gc.freeze()``, O(1)) after recovery and every ``GC_FREEZE_EVERY`` writes, and once
        per log fold unfreezes and collects once, so reference cycles made meanwhile (by
        anyone in the process) are still reclaimed: one full pass per fold instead of many.
        ``close()`` unfreezes."""
        self.data_dir = Path(data_dir)
        self.history_events = history_events
        self.history_seconds = history_seconds
        self.watch_buffer = watch_buffer
        self.snapshot_log_bytes = snapshot_log_bytes
        self.snapshot_log_records = snapshot_log_records
        self.snapshot_on_close = snapshot_on_close
        self.freeze_gc = freeze_gc
        self._clock = clock

        self._index: dict[str, Item] = {}
        self._keys: list[str] = []
        self._revision = 0            # last applied (durable) revision
        self._allocated = 0           # last revision handed to a queued write
        self._compact_revision = 0
        self._history: list[Change] = []
        self._history_start = 0       # history[:start] is dropped (trimmed lazily in bulk)
        self._pending: dict[str, tuple[int, Item | None]] = {}
        self._queued = 0              # writes handed to the log thread, not yet applied or failed
        self._watchers = WatcherIndex()

        self._segment: SegmentWriter | None = None
        self._lock_fd = -1
        self._wal_thread: ThreadPoolExecutor | None = None
        self._snapshot_thread: ThreadPoolExecutor | None = None
        self._committer: GroupCommitter | None = None
        self._snapshot_task: asyncio.Task | None = None
        self._broken: str | None = None
        self._closing = False
        self._started = False
        self.last_snapshot_error: str | None = None
        self.recovered: RecoveredState | None = None
        self.snapshots_written = 0
        self.commit_batches = 0       # fsyncs of the log (group commit: fewer than writes)
        self.committed_writes = 0
        self._frozen_at = 0

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Take the directory lock, recover snapshot + log, open a fresh log segment."""
        loop = asyncio.get_running_loop()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create store data directory {self.data_dir}: {exc.strerror or exc}") from exc
        self._lock_fd = lock_data_dir(self.data_dir)
        self._wal_thread = ThreadPoolExecutor(1, thread_name_prefix="store-wal")
        self._snapshot_thread = ThreadPoolExecutor(1, thread_name_prefix="store-snapshot")
        try:
            state = await loop.run_in_executor(self._wal_thread, lambda: recover(self.data_dir, repair=True))
            # A fresh segment, so nothing is ever appended after a crash-damaged tail; an empty
            # newest segment (a restart without writes) is simply reused.
            last = self.data_dir / segment_name(state.last_segment)
            reuse = state.last_segment > 0 and last.exists() and last.stat().st_size == 0
            self._segment = await loop.run_in_executor(
                self._wal_thread, SegmentWriter, self.data_dir, state.last_segment + (0 if reuse else 1))
        except BaseException:
            self._release()
            raise
        if self.freeze_gc:
            gc.freeze()
        self._index = state.items
        self._keys = sorted(state.items)
        self._revision = self._allocated = state.revision
        self._compact_revision = state.snapshot_revision
        self._history = state.history
        # keep the recovery figures, not a second reference to what the store now owns
        state.history, state.items = [], {}
        self.recovered = state
        self._history_start = 0
        self._trim_history()
        self._committer = GroupCommitter(self._segment, loop, self._committed, max_batch=MAX_BATCH,
                                         name=f"store-wal {self.data_dir.name}")
        self._started = True

    async def close(self) -> None:
        """Finish queued writes, optionally fold the log into a snapshot, end watches, unlock."""
        if not self._started:
            return
        self._closing = True
        try:
            await asyncio.shield(self._barrier())  # every queued write applied (or failed)
        finally:
            if self._snapshot_task is not None:
                await asyncio.gather(self._snapshot_task, return_exceptions=True)
            if (self.snapshot_on_close and self._broken is None and self._segment is not None
                    and self._segment.records > 0):
                try:
                    await self._fold_log()
                except StoreError as exc:
                    log.error("store %s: final snapshot failed: %s", self.data_dir, exc)
            for watcher in self._watchers.all():
                watcher.end()
            self._watchers.clear()
            self._started = False
            self._release()
            if self.freeze_gc:
                gc.unfreeze()  # the rest of the process gets the collector's usual behaviour back

    def _release(self) -> None:
        if self._committer is not None:
            self._committer.stop()
            self._committer = None
        if self._segment is not None:
            self._segment.close()
            self._segment = None
        for pool in (self._wal_thread, self._snapshot_thread):
            if pool is not None:
                pool.shutdown(wait=True)
        self._wal_thread = self._snapshot_thread = None
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def compact_revision(self) -> int:
        return self._compact_revision

    def __len__(self) -> int:
        return len(self._index)

    # ----------------------------------------------------------------- reads

    async def get(self, key: str) -> Item | None:
        return self._index.get(key)

    async def list(self, prefix: str, *, start_after: str | None = None, limit: int | None = None,
                   revision: int | None = None) -> ListResult:
        """Items under ``prefix`` in key order, after ``start_after``, at most ``limit``.

        ``revision=None`` (or the current revision) lists current state. An older revision is
        served exactly while it is within the retained history (``revision >= compact_revision``)
        by undoing later changes; older ones raise ``Compacted``, newer ones ``FutureRevision``.
        """
        if revision is None or revision == self._revision:
            return self._list_current(prefix, start_after, limit)
        if revision > self._revision:
            raise FutureRevision(f"revision {revision} is newer than the store's {self._revision}")
        self._trim_history()
        if revision < self._compact_revision:
            raise Compacted(revision, self._compact_revision)
        return self._list_at(prefix, start_after, limit, revision)

    def _first_index(self, prefix: str, start_after: str | None) -> int:
        if start_after is not None and start_after >= prefix:
            return bisect.bisect_right(self._keys, start_after)
        return bisect.bisect_left(self._keys, prefix)

    def _list_current(self, prefix: str, start_after: str | None, limit: int | None) -> ListResult:
        keys, index = self._keys, self._index
        position = self._first_index(prefix, start_after)
        # the prefix's range ends where the next prefix would start (bisect, not a scan: islice
        # would walk every key before ``position``)
        end = bisect.bisect_left(keys, prefix[:-1] + chr(ord(prefix[-1]) + 1), lo=position) if prefix else len(keys)
        more = limit is not None and end - position > limit
        if more:
            end = position + limit
        items = [index[key] for key in keys[position:end]]
        return ListResult(items, self._revision, more)

    def _list_at(self, prefix: str, start_after: str | None, limit: int | None, revision: int) -> ListResult:
        # The state at `revision`: current state with every later change under prefix undone.
        overrides: dict[str, Item | None] = {}
        start = bisect.bisect_right(self._history, revision, lo=self._history_start,
                                    key=lambda change: change.revision)
        for change in reversed(self._history[start:]):
            if change.key.startswith(prefix):
                overrides[change.key] = change.prev_item()
        extra = sorted(key for key, item in overrides.items()
                       if item is not None and (start_after is None or key > start_after))
        items: list[Item] = []
        wanted = None if limit is None else limit + 1
        position = self._first_index(prefix, start_after)
        keys = self._keys
        extra_position = 0
        while wanted is None or len(items) < wanted:
            current_key = keys[position] if position < len(keys) and keys[position].startswith(prefix) else None
            while current_key is not None and current_key in overrides:
                position += 1
                current_key = keys[position] if position < len(keys) and keys[position].startswith(prefix) else None
            extra_key = extra[extra_position] if extra_position < len(extra) else None
            if current_key is None and extra_key is None:
                break
            if extra_key is None or (current_key is not None and current_key < extra_key):
                items.append(self._index[current_key])
                position += 1
            else:
                items.append(overrides[extra_key])
                extra_position += 1
        more = limit is not None and len(items) > limit
        if more:
            del items[limit:]
        return ListResult(items, revision, more)

    # ----------------------------------------------------------------- writes

    async def create(self, key: str, value: dict) -> Item:
        """Raises KeyExists. Returns the stored item (durable when this returns)."""
        self._check_writable()
        if self._current(key) is not None:
            raise KeyExists(key)
        encoded = self._encode(key, value)
        revision = self._allocated + 1
        item = Item(key, None, revision, revision, encoded)
        return await self._submit(key, revision, item, None, encoded, b'"p","c":%d,"v":%b' % (revision, encoded))

    async def update(self, key: str, value: dict, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Durable when this returns."""
        self._check_writable()
        current = self._current(key)
        if current is None:
            raise KeyNotFound(key)
        if expected_revision is not None and current.mod_revision != expected_revision:
            raise RevisionConflict(key, expected_revision, current)  # the newest, even if still queued
        encoded = self._encode(key, value)
        revision = self._allocated + 1
        item = Item(key, None, revision, current.create_revision, encoded)
        return await self._submit(key, revision, item, current, encoded,
                                  b'"p","c":%d,"v":%b' % (current.create_revision, encoded))

    async def delete(self, key: str, *, expected_revision: int | None = None) -> Item:
        """Raises KeyNotFound, RevisionConflict. Returns the deleted item (revision = delete's)."""
        self._check_writable()
        current = self._current(key)
        if current is None:
            raise KeyNotFound(key)
        if expected_revision is not None and current.mod_revision != expected_revision:
            raise RevisionConflict(key, expected_revision, current)  # the newest, even if still queued
        revision = self._allocated + 1
        await self._submit(key, revision, None, current, None, b'"d"')
        return Item(key, None, revision, current.create_revision, current.raw)

    def _check_writable(self) -> None:
        if not self._started or self._closing:
            raise StoreError(f"store {self.data_dir} is not open")
        if self._broken is not None:
            raise StoreError(f"store {self.data_dir} takes no more writes: {self._broken}")

    def _current(self, key: str) -> Item | None:
        """The key's newest state including queued writes (what compare-and-set must see)."""
        pending = self._pending.get(key)
        if pending is not None:
            return pending[1]
        return self._index.get(key)

    @staticmethod
    def _encode(key: str, value: dict) -> bytes:
        """The value as compact JSON: the one form the store keeps (``Item.value`` decodes it)."""
        try:
            return compact_json(value)
        except TypeError as exc:
            raise StoreError(f"value for {key} is not JSON-serialisable: {exc}") from exc

    async def _submit(self, key: str, revision: int, item: Item | None, prev: Item | None,
                      encoded: bytes | None, tail: bytes) -> Item | None:
        payload = b'{"r":%d,"t":%r,"k":%b,"o":%b}' % (revision, self._clock(), orjson.dumps(key), tail)
        future = asyncio.get_running_loop().create_future()
        self._allocated = revision
        self._pending[key] = (revision, item)
        self._queued += 1
        self._committer.submit(frame(payload), _Mutation(key, revision, item, prev, encoded, future))
        # A cancelled caller does not cancel the write: it is queued and will be applied.
        return await future

    def _committed(self, batch: list[_Mutation], error: WalFailed | None) -> None:
        """On the loop, in log order: a batch is durable (apply it) or was refused (fail it)."""
        self._queued -= len(batch)
        if error is None and self._broken is not None:
            # applying an earlier batch failed: memory no longer follows the log, apply nothing more
            error = WalFailed(f"store {self.data_dir} takes no more writes: {self._broken}", broken=True)
        if error is not None:
            self._fail_queued(batch, error)
            return
        self.commit_batches += 1
        self.committed_writes += len(batch)
        if self.freeze_gc and self.committed_writes - self._frozen_at >= GC_FREEZE_EVERY:
            gc.freeze()
            self._frozen_at = self.committed_writes
        try:
            self._apply(batch)
        except Exception as exc:  # a bug: memory may now lag the log; stop taking writes
            log.exception("store %s: applying a committed batch failed", self.data_dir)
            self._fail_queued(batch, WalFailed(f"applying committed writes failed: {exc!r}; "
                                               f"restart the store to recover from its log", broken=True))
            return
        if self._due_for_snapshot():
            self._start_snapshot()

    def _fail_queued(self, batch: list[_Mutation], exc: WalFailed) -> None:
        # Later queued writes were checked against the failed ones (pending overlay): fail them too.
        # The log thread is halted after a failed append until it is resumed here.
        committer = self._committer
        queued = committer.take_queued()
        failed = batch + [token for token in queued if not committer.is_call(token)]
        self._queued -= len(failed) - len(batch)
        self._pending.clear()
        self._allocated = max(self._allocated, self._revision)
        if exc.broken and self._broken is None:
            self._broken = str(exc)
        for mutation in failed:
            if not mutation.future.done():
                mutation.future.set_exception(StoreError(str(exc)))
        for token in queued:
            if committer.is_call(token):
                committer.fail_call(token, _NotRun(f"not run after a failed log append: {exc}"))
        committer.resume()

    def _log_call(self, fn: Callable, then: Callable[[object], object] | None = None) -> asyncio.Future:
        """Run ``fn`` in the log thread after every write queued so far; ``then(result)`` runs on
        the loop right after those writes are applied and before any later one is: the future
        gets its value."""
        future = asyncio.get_running_loop().create_future()

        def done(result: object, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
                return
            try:
                future.set_result(then(result) if then is not None else result)
            except BaseException as exc:  # noqa: BLE001 - reported to the awaiting caller
                future.set_exception(exc)

        self._committer.call(fn, done)
        return future

    def _barrier(self) -> asyncio.Future:
        return self._log_call(lambda: None)

    def _apply(self, batch: list[_Mutation]) -> None:
        now = self._clock()
        index, keys, pending = self._index, self._keys, self._pending
        changes, events = [], []
        for mutation in batch:
            key, revision, item, prev = mutation.key, mutation.revision, mutation.item, mutation.prev
            if item is not None:
                if prev is None:
                    bisect.insort(keys, key)
                index[key] = item
                event = Event("PUT", key, None, revision, created=prev is None, raw=item.raw,
                              prev_raw=None if prev is None else prev.raw)
            else:
                del index[key]
                del keys[bisect.bisect_left(keys, key)]
                event = Event("DELETE", key, None, revision, raw=prev.raw, prev_raw=prev.raw)
            entry = pending.get(key)
            if entry is not None and entry[0] == revision:
                del pending[key]
            events.append(event)
            changes.append(make_change(revision, key, item, prev, now))
            self._revision = revision
            if not mutation.future.done():
                mutation.future.set_result(item)
        self._history.extend(changes)
        self._notify(events)
        self._trim_history()

    def _notify(self, events: list[Event]) -> None:
        plain = self._watchers.plain
        if plain:
            overflowed = [watcher for watcher in plain if not watcher.offer(events)]
            for watcher in overflowed:
                plain.discard(watcher)
        if self._watchers.groups:
            self._notify_triggered(events)

    def _notify_triggered(self, events: list[Event]) -> None:
        """Each event to the triggered watchers indexed under its value or previous value only."""
        for (scope, _), (trigger, by_value) in list(self._watchers.groups.items()):
            hits: dict[Hashable, list[Event]] = {}
            for event in events:
                if not event.key.startswith(scope):
                    continue
                for value in WatcherIndex.touched(trigger, by_value, event):
                    if value in by_value:
                        hits.setdefault(value, []).append(event)
            for value, batch in hits.items():
                watchers = by_value.get(value)
                if watchers:
                    for watcher in [w for w in watchers if not w.offer(batch)]:
                        watchers.discard(watcher)

    def _register(self, watcher: Subscriber, trigger: Trigger | None) -> None:
        self._watchers.add(watcher, trigger)
        if trigger is not None:
            # an indexed watcher is not offered the events it is not indexed under: its progress
            # (for bookmarks) is the store's, not the last event it saw
            watcher.reached = lambda: self._revision

    # ----------------------------------------------------------------- history, watches

    def _trim_history(self) -> None:
        history = self._history
        start = self._history_start
        oldest_allowed = self._clock() - self.history_seconds
        keep_from = max(start, len(history) - self.history_events)
        while keep_from < len(history) and history[keep_from].at < oldest_allowed:
            keep_from += 1
        if keep_from > start:
            self._compact_revision = max(self._compact_revision, history[keep_from - 1].revision)
            self._history_start = keep_from
            if keep_from >= 1024 or keep_from * 2 > len(history):  # amortised: free trimmed entries
                del history[:keep_from]
                self._history_start = 0

    async def compact(self, revision: int | None = None) -> int:
        """Drop history up to ``revision`` (default: current); returns the compaction revision."""
        target = self._revision if revision is None else revision
        if target > self._revision:
            raise FutureRevision(f"cannot compact to revision {target}: the store is at {self._revision}")
        start = bisect.bisect_right(self._history, target, lo=self._history_start,
                                    key=lambda change: change.revision)
        self._history_start = start
        self._compact_revision = max(self._compact_revision, target)
        self._trim_history()
        return self._compact_revision

    #: ``watch(..., trigger=Trigger)`` is understood (the API server indexes selector watches)
    watch_triggers = True

    def watch(self, prefix: str, *, after_revision: int, trigger: Trigger | None = None) -> WatchStream:
        """Events under ``prefix`` with revision > ``after_revision``: replayed history, then live.

        Raises ``Compacted`` on first iteration if ``after_revision`` is older than the retained
        history; ends with ``WatchOverflow`` (a ``Compacted``) if the consumer falls more than
        ``watch_buffer`` live events behind; ends normally when the store closes. Events up to
        and including ``after_revision`` are never delivered, even when it is in the future.
        The returned stream's ``progress()`` reports how far it is complete (``fanout.WatchStream``).
        With a ``trigger`` (``fanout.Trigger``) only events whose value or previous value match
        its index are delivered (replayed history included).
        """
        stream = WatchStream()
        return stream.attach(self._watch(prefix, after_revision, stream, trigger))

    async def _watch(self, prefix: str, after_revision: int, stream: WatchStream,
                     trigger: Trigger | None = None) -> AsyncIterator[Event]:
        self._trim_history()
        if after_revision < self._compact_revision:
            raise Compacted(after_revision, self._compact_revision)
        start = bisect.bisect_right(self._history, after_revision, lo=self._history_start,
                                    key=lambda change: change.revision)
        replay = [change for change in self._history[start:] if change.key.startswith(prefix)]
        # every event up to the current revision is either in `replay` or before after_revision
        watcher = Subscriber(prefix, self.watch_buffer, after_revision, seen=self._revision)
        stream.subscriber = watcher
        self._register(watcher, trigger)
        try:
            for change in replay:
                watcher.last_revision = change.revision
                event = change.event()
                if trigger is None or _triggers(trigger, event):
                    yield event
            stream.replaying = False
            async for event in deliver(watcher, after_revision):
                yield event
        finally:
            self._watchers.discard(watcher, trigger)

    # ----------------------------------------------------------------- snapshots

    def _due_for_snapshot(self) -> bool:
        segment = self._segment
        return (self._snapshot_task is None and segment is not None and not self._closing
                and (segment.size >= self.snapshot_log_bytes or segment.records >= self.snapshot_log_records))

    def _start_snapshot(self) -> None:
        self._snapshot_task = asyncio.create_task(self._background_fold(), name=f"store-snapshot {self.data_dir}")

    async def _background_fold(self) -> None:
        try:
            await self._fold_log()
        except StoreError as exc:
            self.last_snapshot_error = str(exc)
            log.error("store %s: snapshot failed (the log keeps growing; will retry): %s", self.data_dir, exc)
        finally:
            self._snapshot_task = None

    async def _fold_log(self) -> None:
        """Rotate the log, write the index as a snapshot off the loop, delete covered segments."""
        loop = asyncio.get_running_loop()
        if self._broken is not None:
            raise StoreError(f"store {self.data_dir} is broken: {self._broken}")
        # The rotation runs in the log thread between batches; the index is copied on the loop
        # right after the last record of the closed segment is applied and before any later one:
        # every record in the closed segments is in the copy, nothing newer is. Items are
        # immutable and values are never mutated, so a shallow copy is a consistent image.
        try:
            closed, items, revision = await self._log_call(
                self._segment.rotate, lambda closed: (closed, dict(self._index), self._revision))
        except _NotRun:
            raise
        except (OSError, StoreError) as exc:
            self._broken = f"cannot start a new log segment: {exc}"
            raise StoreError(self._broken) from exc
        now = self._clock()

        def fold() -> None:
            write_snapshot(self.data_dir / SNAPSHOT_NAME, items, revision, now=now)
            remove_segments_through(self.data_dir, closed)

        await loop.run_in_executor(self._snapshot_thread, fold)
        if self.freeze_gc:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        self.snapshots_written += 1
        self.last_snapshot_error = None

    async def snapshot(self) -> int:
        """Fold the log into the snapshot now; returns the snapshot's revision."""
        self._check_writable()
        if self._snapshot_task is not None:
            await asyncio.gather(self._snapshot_task, return_exceptions=True)
        await self._fold_log()
        return self._revision

    async def backup(self, target: str | os.PathLike) -> dict:
        """Write a consistent copy of the applied state to ``target`` (a snapshot file; off the loop)."""
        items, revision = dict(self._index), self._revision  # one image: no await in between
        await asyncio.get_running_loop().run_in_executor(self._snapshot_thread, write_snapshot,
                                                         Path(target), items, revision)
        return {"revision": revision, "keys": len(items), "file": str(target)}

    def status(self) -> dict:
        """Figures for ``clusterctl store status`` on a running store."""
        return {"backend": "tinydb", "data_dir": str(self.data_dir), "revision": self._revision,
                "compact_revision": self._compact_revision, "keys": len(self._index),
                "history_events": len(self._history) - self._history_start,
                "watchers": len(self._watchers.all()), "snapshots_written": self.snapshots_written,
                "commit_batches": self.commit_batches, "committed_writes": self.committed_writes,
                "broken": self._broken}


def _triggers(trigger: Trigger, event: Event) -> bool:
    """Whether a replayed event concerns a triggered watcher (the live path indexes instead)."""
    if not event.key.startswith(trigger.scope):
        return False
    try:
        return trigger.value in trigger.values_of(event.key, lambda: event.value, lambda: event.prev_value)
    except Exception:  # noqa: BLE001 - cannot tell: deliver it (the watcher filters again)
        return True
