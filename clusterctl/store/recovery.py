"""Recovery of the tinydb backend's state: the snapshot, then every later log record replayed.

Shared by the store's start-up and by the offline admin commands (``clusterctl store ...``) so
both see exactly the same state. Records at or below the snapshot's revision are skipped (they
belong to segments the snapshot already covers but that were not yet deleted when a crash came);
later records must have strictly increasing revisions, else the log is reported corrupt.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from clusterctl.store.base import CorruptLog, Event, Item
from clusterctl.store.snapshot import SNAPSHOT_NAME, read_snapshot
from clusterctl.store.wal import iter_records, list_segments


@dataclass(slots=True)
class Change:
    """One applied write as history keeps it: compact (values as JSON bytes, decoded on use).

    History may hold tens of thousands of superseded values; as bytes they take a fraction of
    the memory of dicts. ``value`` is the new value (PUT) or the last value (DELETE); ``prev``
    the value before (None when the write created the key) with its revisions.
    """

    revision: int
    key: str
    deleted: bool
    created: bool
    value: bytes
    prev: bytes | None
    prev_mod_revision: int
    prev_create_revision: int
    at: float

    def event(self) -> Event:
        if self.deleted:
            return Event("DELETE", self.key, None, self.revision, raw=self.value, prev_raw=self.value)
        return Event("PUT", self.key, None, self.revision, created=self.created, raw=self.value, prev_raw=self.prev)

    def prev_item(self) -> Item | None:
        """The item this change replaced (None if it created the key)."""
        if self.prev is None:
            return None
        return Item(self.key, None, self.prev_mod_revision, self.prev_create_revision, self.prev)


def compact_json(value: dict) -> bytes:
    """``orjson.dumps`` into an exactly sized object: orjson's own result keeps a >= 4 KiB
    allocation even for a 1 KiB document, which quadruples what long-lived copies cost."""
    return bytes(memoryview(orjson.dumps(value)))


def make_change(revision: int, key: str, item: Item | None, prev: Item | None, at: float) -> Change:
    """The history entry of one write (``item`` None for a delete).

    Values are the items' own ``raw`` bytes, so the bytes a change stores as its new value are
    the very object the next change of that key stores as its previous value: each value is
    held once however many history entries and items mention it.
    """
    prev_encoded = None
    if prev is not None:
        prev_encoded = prev.raw if prev.raw is not None else compact_json(prev.value)
    encoded = None
    if item is not None:
        encoded = item.raw if item.raw is not None else compact_json(item.value)
    if item is None:
        return Change(revision, key, True, False, prev_encoded, prev_encoded,
                      prev.mod_revision, prev.create_revision, at)
    return Change(revision, key, False, prev is None, encoded, prev_encoded,
                  0 if prev is None else prev.mod_revision, 0 if prev is None else prev.create_revision, at)


@dataclass(slots=True)
class RecoveredState:
    items: dict[str, Item]
    revision: int
    snapshot_revision: int
    snapshot_written_at: float | None
    history: list[Change] = field(default_factory=list)
    last_segment: int = 0
    log_records: int = 0


def apply_record(items: dict[str, Item], record: dict, where: str) -> Change:
    """Apply one decoded log record to ``items``; returns the change it made."""
    try:
        revision = record["r"]
        key = record["k"]
        op = record["o"]
        at = record["t"]
    except (KeyError, TypeError) as exc:
        raise CorruptLog(f"{where}: malformed log record {record!r}") from exc
    prev = items.get(key)
    if op == "p":
        value = record["v"]
        item = Item(key, None, revision, record.get("c", revision), compact_json(value))
        items[key] = item
        return make_change(revision, key, item, prev, at)
    if op == "d":
        if prev is None:
            raise CorruptLog(f"{where}: log record deletes {key!r} at revision {revision}, which does not exist")
        del items[key]
        return make_change(revision, key, None, prev, at)
    raise CorruptLog(f"{where}: unknown log operation {op!r} at revision {revision}")


def recover(data_dir: Path, *, repair: bool) -> RecoveredState:
    """Snapshot + log replay (blocking). ``repair`` truncates a torn log tail (with a warning).

    The cyclic garbage collector is paused meanwhile: recovery allocates about a million small
    containers, and the collector's repeated full passes over them triple the time it takes.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _recover(data_dir, repair=repair)
    finally:
        if was_enabled:
            gc.enable()


def _recover(data_dir: Path, *, repair: bool) -> RecoveredState:
    snapshot = read_snapshot(data_dir / SNAPSHOT_NAME)
    state = RecoveredState(items=snapshot.items, revision=snapshot.revision,
                           snapshot_revision=snapshot.revision, snapshot_written_at=snapshot.written_at)
    segments = list_segments(data_dir)
    state.last_segment = segments[-1][0] if segments else 0
    for record in iter_records(data_dir, repair=repair):
        revision = record.get("r") if isinstance(record, dict) else None
        if not isinstance(revision, int):
            raise CorruptLog(f"write-ahead log in {data_dir}: record without a revision: {record!r}")
        state.log_records += 1
        if revision <= snapshot.revision:
            continue
        if revision <= state.revision:
            raise CorruptLog(f"write-ahead log in {data_dir}: revision {revision} follows {state.revision}; "
                             f"revisions must increase")
        state.history.append(apply_record(state.items, record, f"write-ahead log in {data_dir}"))
        state.revision = revision
    return state
