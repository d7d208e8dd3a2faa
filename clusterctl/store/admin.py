"""Administration of a tinydb store's data directory: status, compact, backup, restore.

Offline operations take the directory lock, so they refuse to run beside a live store (``status``
then reports the files only). For a running server the API process calls ``TinyDBStore.backup(FILE)`` and
``TinyDBStore.snapshot()`` on its open store instead. A backup is one TinyDB snapshot file
(the same format as ``snapshot.json``: the log folded in), so restoring is checking it and
installing it as the directory's only file.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from clusterctl.store.base import StoreError
from clusterctl.store.recovery import recover
from clusterctl.store.snapshot import SNAPSHOT_NAME, read_snapshot, write_snapshot
from clusterctl.store.tinydb_store import LOCK_NAME, StoreLocked, lock_data_dir
from clusterctl.store.wal import fsync_dir, list_segments, remove_segments_through


def _files(data_dir: Path) -> dict:
    snapshot = data_dir / SNAPSHOT_NAME
    segments = list_segments(data_dir) if data_dir.is_dir() else []
    info: dict = {"data_dir": str(data_dir), "log_segments": len(segments),
                  "log_bytes": sum(path.stat().st_size for _, path in segments),
                  "snapshot_bytes": snapshot.stat().st_size if snapshot.exists() else 0}
    return info


def status(data_dir: str | os.PathLike, *, now: float | None = None) -> dict:
    """Revision, key count, log size, snapshot age (replaying the log unless a store has it open)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise StoreError(f"store data directory {data_dir} does not exist")
    info = _files(data_dir)
    now = time.time() if now is None else now
    try:
        lock_fd = lock_data_dir(data_dir)
    except StoreLocked as exc:
        info["running"] = str(exc)
        snapshot = read_snapshot(data_dir / SNAPSHOT_NAME)
        info.update(snapshot_revision=snapshot.revision,
                    snapshot_age_s=None if snapshot.written_at is None else round(now - snapshot.written_at, 1))
        return info
    try:
        state = recover(data_dir, repair=False)
    finally:
        os.close(lock_fd)
    info.update(running=None, revision=state.revision, keys=len(state.items),
                log_records=state.log_records, snapshot_revision=state.snapshot_revision,
                snapshot_age_s=None if state.snapshot_written_at is None
                else round(now - state.snapshot_written_at, 1))
    return info


def compact(data_dir: str | os.PathLike) -> dict:
    """Fold the whole log into a fresh snapshot (repairing a torn tail) and delete the log."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise StoreError(f"store data directory {data_dir} does not exist")
    lock_fd = lock_data_dir(data_dir)
    try:
        state = recover(data_dir, repair=True)
        write_snapshot(data_dir / SNAPSHOT_NAME, state.items, state.revision)
        remove_segments_through(data_dir, state.last_segment)
    finally:
        os.close(lock_fd)
    return {"revision": state.revision, "keys": len(state.items), "folded_records": state.log_records}


def backup(data_dir: str | os.PathLike, target: str | os.PathLike) -> dict:
    """A consistent copy of a stopped store (snapshot + log folded) as one file."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise StoreError(f"store data directory {data_dir} does not exist")
    lock_fd = lock_data_dir(data_dir)
    try:
        state = recover(data_dir, repair=False)
    finally:
        os.close(lock_fd)
    write_snapshot(Path(target), state.items, state.revision)
    return {"revision": state.revision, "keys": len(state.items), "file": str(target)}


def restore(source: str | os.PathLike, data_dir: str | os.PathLike, *, force: bool = False) -> dict:
    """Install a backup as the data directory's state; refuses a non-empty directory unless ``force``."""
    source, data_dir = Path(source), Path(data_dir)
    if not source.is_file():
        raise StoreError(f"backup file {source} does not exist")
    backup_state = read_snapshot(source)  # refuse a damaged backup before touching anything
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = lock_data_dir(data_dir)
    try:
        existing = [entry.name for entry in os.scandir(data_dir) if entry.name != LOCK_NAME]
        if existing and not force:
            raise StoreError(f"store data directory {data_dir} is not empty ({', '.join(sorted(existing)[:5])}); "
                             f"use --force to replace its contents")
        temporary = data_dir / (SNAPSHOT_NAME + ".restore")
        shutil.copyfile(source, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        for _, path in list_segments(data_dir):
            path.unlink()
        os.replace(temporary, data_dir / SNAPSHOT_NAME)
        fsync_dir(data_dir)
    except OSError as exc:
        raise StoreError(f"cannot restore {source} into {data_dir}: {exc.strerror or exc}") from exc
    finally:
        os.close(lock_fd)
    return {"revision": backup_state.revision, "keys": len(backup_state.items), "data_dir": str(data_dir)}
