"""The cluster store: one interface (``clusterctl.store.base.Store``), two backends.

``tinydb`` (embedded default): an in-memory index is the truth while running, every acknowledged
write is first appended to a fsync'd JSON-lines WAL (group commit), TinyDB holds a compacted
snapshot the log is folded into; recovery = snapshot + log replay.
``etcd``: the same semantics on etcd v3 through its JSON gateway, for HA.
Only the API server process talks to a store.

Modules: ``base`` (contract, errors), ``tinydb_store`` (embedded backend), ``wal`` (framed,
checksummed log segments), ``snapshot`` (TinyDB snapshot file), ``recovery`` (snapshot + log
replay), ``fanout`` (bounded per-watcher buffers), ``etcd_store`` (etcd backend),
``etcd_process`` (a throwaway local etcd for tests and benches), ``admin`` + ``cli``
(``clusterctl store ...``), ``bench`` (store-level micro benchmark).
"""

from __future__ import annotations

from clusterctl.store.base import (
    Compacted,
    CorruptLog,
    Event,
    FutureRevision,
    Item,
    KeyExists,
    KeyNotFound,
    ListResult,
    RevisionConflict,
    Store,
    StoreError,
    StoreUnavailable,
    WatchOverflow,
)

__all__ = [
    "Compacted", "CorruptLog", "Event", "FutureRevision", "Item", "KeyExists", "KeyNotFound",
    "ListResult", "RevisionConflict", "Store", "StoreError", "StoreUnavailable", "WatchOverflow", "open_store",
]

_TINYDB_OPTIONS = ("history_events", "history_seconds", "watch_buffer", "snapshot_log_bytes",
                   "snapshot_log_records", "snapshot_on_close", "freeze_gc")
_ETCD_OPTIONS = ("prefix", "timeout", "ca_file", "cert_file", "key_file", "retry_budget", "read_batches")


def open_store(config: dict) -> Store:
    """A backend from a config dict (not started: ``await store.start()``).

    ``{'backend': 'tinydb', 'data_dir': DIR, [history_events, history_seconds, watch_buffer,
    snapshot_log_bytes, snapshot_log_records, snapshot_on_close, freeze_gc]}`` or
    ``{'backend': 'etcd', 'endpoints': ['http://127.0.0.1:2379'], 'prefix': '/registry'}``.
    """
    from clusterctl.errors import UsageError

    backend = config.get("backend", "tinydb")
    if backend == "tinydb":
        from clusterctl.store.tinydb_store import TinyDBStore

        if not config.get("data_dir"):
            raise UsageError("store config: backend tinydb needs 'data_dir'")
        unknown = set(config) - {"backend", "data_dir", *_TINYDB_OPTIONS}
        if unknown:
            raise UsageError(f"store config: unknown tinydb option(s): {', '.join(sorted(unknown))}")
        options = {name: config[name] for name in _TINYDB_OPTIONS if name in config}
        return TinyDBStore(config["data_dir"], **options)
    if backend == "etcd":
        from clusterctl.store.etcd_store import EtcdStore

        endpoints = config.get("endpoints")
        if not endpoints or not isinstance(endpoints, list):
            raise UsageError("store config: backend etcd needs 'endpoints' (a list of URLs)")
        unknown = set(config) - {"backend", "endpoints", *_ETCD_OPTIONS}
        if unknown:
            raise UsageError(f"store config: unknown etcd option(s): {', '.join(sorted(unknown))}")
        options = {name: config[name] for name in _ETCD_OPTIONS if name in config}
        return EtcdStore(endpoints, **options)
    raise UsageError(f"store config: unknown backend {backend!r} (tinydb or etcd)")
