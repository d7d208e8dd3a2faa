"""Recovery of the tinydb backend's state: the snapshot, then every later log record replayed.

Shared by the store's start-up and by the offline admin commands (``clusterctl store ...``) so
both see exactly the same state. Records at or below the snapshot's revision are skipped (they
belong to segments the snapshot already covers but that were not yet deleted when a crash came);
later records must have strictly increasing revisions, else the log is reported corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clusterctl.store.base import CorruptLog, Event, Item
from clusterctl.store.snapshot import SNAPSHOT_NAME, read_snapshot
from clusterctl.store.wal import iter_records, list_segments


@dataclass(slots=True)
class Change:
    """One applied write as history keeps it: the event, the item it replaced, and when."""

    event: Event
    prev: Item | None
    at: float


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
        item = Item(key, record["v"], revision, record.get("c", revision))
        items[key] = item
        event = Event("PUT", key, item.value, revision,
                      prev_value=None if prev is None else prev.value, created=prev is None)
    elif op == "d":
        if prev is None:
            raise CorruptLog(f"{where}: log record deletes {key!r} at revision {revision}, which does not exist")
        del items[key]
        event = Event("DELETE", key, prev.value, revision, prev_value=prev.value)
    else:
        raise CorruptLog(f"{where}: unknown log operation {op!r} at revision {revision}")
    return Change(event, prev, at)


def recover(data_dir: Path, *, repair: bool) -> RecoveredState:
    """Snapshot + log replay (blocking). ``repair`` truncates a torn log tail (with a warning)."""
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
