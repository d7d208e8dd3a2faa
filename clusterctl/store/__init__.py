"""The cluster store: one interface (``clusterctl.store.base.Store``), two backends.

``tinydb`` (embedded default): an in-memory index is the truth while running, every acknowledged
write is first appended to a fsync'd JSON-lines WAL (group commit), TinyDB holds a compacted
snapshot the log is folded into; recovery = snapshot + log replay.
``etcd``: the same semantics on etcd v3 through its JSON gateway, for HA.
Only the API server process talks to a store.
"""
