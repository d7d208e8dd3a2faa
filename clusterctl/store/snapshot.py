"""The compacted snapshot of the tinydb backend: one TinyDB file written in one flush.

TinyDB rewrites its whole file on every write, so the store never writes it per API write: the
write-ahead log takes those, and the snapshot is rebuilt from the in-memory index now and then
(``insert_multiple`` under ``CachingMiddleware``, flushed once on close). It is written to a
temporary name, fsync'd, and renamed over ``snapshot.json`` so a crash leaves either the old or
the new snapshot, never a mix. Storage is orjson (TinyDB's default json module is far slower).

File layout (TinyDB tables): ``items`` with one document per key (``k`` key, ``j`` the value's
compact JSON as a string, ``m`` mod_revision, ``c`` create_revision) and ``meta`` with one
document (``revision``, ``written_at``, ``count``, ``format``). Format 2 keeps values as JSON
strings because the store keeps them as bytes: reading one back is a string copy, not a tree of
dicts for the whole file at once (each is still parsed once, alone, to refuse a damaged one).
Format 1 (``v``: the value as an object) is still read.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from tinydb import TinyDB
from tinydb.middlewares import CachingMiddleware
from tinydb.storages import Storage

from clusterctl.store.base import CorruptLog, Item, StoreError
from clusterctl.store.wal import fsync_dir

SNAPSHOT_NAME = "snapshot.json"
FORMAT = 2
READABLE_FORMATS = (1, 2)


class OrjsonStorage(Storage):
    """TinyDB storage on one file, serialised with orjson, fsync'd on every write."""

    def __init__(self, path: str, access_mode: str = "r+"):
        self._path = path
        self._writable = access_mode != "r"

    def read(self) -> dict | None:
        try:
            with open(self._path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        if not data:
            return None
        return orjson.loads(data)

    def write(self, data: dict) -> None:
        if not self._writable:
            raise StoreError(f"snapshot {self._path} was opened read-only")
        with open(self._path, "wb") as handle:
            handle.write(orjson.dumps(data))
            handle.flush()
            os.fsync(handle.fileno())

    def close(self) -> None:
        pass


@dataclass(slots=True)
class Snapshot:
    revision: int
    items: dict[str, Item]
    written_at: float | None


def write_snapshot(path: Path, items: dict[str, Item], revision: int, *, now: float | None = None) -> None:
    """Atomically replace ``path`` with a snapshot of ``items`` at ``revision`` (blocking)."""
    temporary = path.with_name(path.name + ".tmp")
    try:
        temporary.unlink(missing_ok=True)
        db = TinyDB(str(temporary), storage=CachingMiddleware(OrjsonStorage))
        db.table("items").insert_multiple(
            {"k": item.key, "j": (item.raw if item.raw is not None else orjson.dumps(item.value)).decode(),
             "m": item.mod_revision, "c": item.create_revision}
            for item in items.values())
        db.table("meta").insert({"format": FORMAT, "revision": revision, "count": len(items),
                                 "written_at": time.time() if now is None else now})
        db.close()  # CachingMiddleware flushes here: one write of the whole file, fsync'd
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise StoreError(f"cannot write snapshot {path}: {exc.strerror or exc}") from exc


def read_snapshot(path: Path) -> Snapshot:
    """The snapshot at ``path``; an empty one at revision 0 if there is none."""
    if not path.exists():
        return Snapshot(revision=0, items={}, written_at=None)
    try:
        # CachingMiddleware: the file is parsed once, not once per table read
        db = TinyDB(str(path), storage=CachingMiddleware(OrjsonStorage), access_mode="r")
        meta_docs = db.table("meta").all()
        docs = db.table("items").all()
        db.close()
    except OSError as exc:
        raise StoreError(f"cannot read snapshot {path}: {exc.strerror or exc}") from exc
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
        raise CorruptLog(f"snapshot {path} is not a readable TinyDB file: {exc}") from exc
    if len(meta_docs) != 1:
        raise CorruptLog(f"snapshot {path} has {len(meta_docs)} meta documents, expected 1")
    meta = meta_docs[0]
    if meta.get("format") not in READABLE_FORMATS or meta.get("count") != len(docs):
        raise CorruptLog(f"snapshot {path}: format {meta.get('format')!r}, {len(docs)} items but meta says "
                         f"{meta.get('count')!r}")
    items: dict[str, Item] = {}
    try:
        for doc in docs:
            if "j" in doc:
                raw = doc["j"].encode()
                if not isinstance(orjson.loads(raw), dict):
                    raise TypeError(f"value of {doc['k']!r} is not an object")
            else:
                raw = bytes(memoryview(orjson.dumps(doc["v"])))
            items[doc["k"]] = Item(doc["k"], None, doc["m"], doc["c"], raw)
    except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise CorruptLog(f"snapshot {path}: malformed item document ({exc!r})") from exc
    return Snapshot(revision=int(meta["revision"]), items=items, written_at=meta.get("written_at"))
