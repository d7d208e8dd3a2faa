"""Informers: a list + watch cache of one resource, with indexes and change handlers.

The informer lists once, then watches from the list's resourceVersion, resuming from the last
seen resourceVersion whenever the stream ends or breaks. When the server says the version is too
old (410 → ``WatchExpired``) it re-lists and emits *synthetic* changes — adds, updates and deletes
computed by ``diff_snapshot`` against its cache — so handlers see the world converge exactly as
if they had seen every event. Handlers should only enqueue keys (sample-controller's rule); the
cache objects are shared and must never be mutated by callers.

Indexes: every informer indexes by namespace; callers add their own index functions
(``obj -> list[str]``), e.g. pods by ``spec.nodeName`` or by owner uid.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from clusterctl.client.errors import ApiConnectionError, ApiError, WatchExpired
from clusterctl.client.rest import ApiClient, Obj, object_key

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], Iterable[str]]
AddHandler = Callable[[Obj], None]
UpdateHandler = Callable[[Obj, Obj], None]
DeleteHandler = Callable[[Obj], None]


def index_by_namespace(obj: Obj) -> list[str]:
    ns = (obj.get("metadata") or {}).get("namespace")
    return [ns] if ns else []


def index_pods_by_node(obj: Obj) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def index_by_owner_uid(obj: Obj) -> list[str]:
    return [ref["uid"] for ref in (obj.get("metadata") or {}).get("ownerReferences") or [] if ref.get("uid")]


def resource_version(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


@dataclass
class SnapshotDiff:
    """What changed between the cache and a fresh list: the synthetic events of a re-list."""

    added: list[Obj]
    updated: list[tuple[Obj, Obj]]
    deleted: list[Obj]


def diff_snapshot(cached: dict[str, Obj], fresh: Iterable[Obj]) -> SnapshotDiff:
    """Compare a cache (key → object) with a fresh list; unchanged resourceVersions are not updates."""
    added: list[Obj] = []
    updated: list[tuple[Obj, Obj]] = []
    seen: set[str] = set()
    for obj in fresh:
        key = object_key(obj)
        seen.add(key)
        old = cached.get(key)
        if old is None:
            added.append(obj)
        elif resource_version(old) != resource_version(obj) or (old.get("metadata") or {}).get("uid") != (obj.get("metadata") or {}).get("uid"):
            updated.append((old, obj))
    deleted = [obj for key, obj in cached.items() if key not in seen]
    return SnapshotDiff(added, updated, deleted)


class Indexer:
    """key → object, plus named indexes value → keys. Not thread-safe; one event loop."""

    def __init__(self, indexers: dict[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Obj] = {}
        self._index_funcs: dict[str, IndexFunc] = {"namespace": index_by_namespace, **(indexers or {})}
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._index_funcs}

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        self._index_funcs[name] = func
        index: dict[str, set[str]] = {}
        for key, obj in self._items.items():
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        self._indices[name] = index

    def upsert(self, obj: Obj) -> Obj | None:
        key = object_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                index.setdefault(value, set()).add(key)
        return old

    def remove(self, obj: Obj) -> Obj | None:
        key = object_key(obj)
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def keys(self) -> list[str]:
        return list(self._items)

    def list(self) -> list[Obj]:
        return list(self._items.values())

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [self._items[k] for k in self._indices[name].get(value, ())]

    def index_keys(self, name: str, value: str) -> set[str]:
        return set(self._indices[name].get(value, ()))

    def snapshot(self) -> dict[str, Obj]:
        return dict(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Informer:
    """List + watch one resource into an ``Indexer`` and call handlers on every change."""

    def __init__(
        self,
        client: ApiClient,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        indexers: dict[str, IndexFunc] | None = None,
        watch_timeout_seconds: int = 300,
        retry_delay: float = 0.5,
        page_size: int | None = 500,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.indexer = Indexer(indexers)
        self.watch_timeout_seconds = watch_timeout_seconds
        self.retry_delay = retry_delay
        self.page_size = page_size
        self.last_resource_version: str | None = None
        self.relists = 0
        self._handlers: list[tuple[AddHandler | None, UpdateHandler | None, DeleteHandler | None]] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None

    # ----------------------------------------------------------------- wiring

    def add_handler(self, *, on_add: AddHandler | None = None, on_update: UpdateHandler | None = None, on_delete: DeleteHandler | None = None) -> None:
        """Register callbacks; a handler added after sync is replayed the cache as adds."""
        self._handlers.append((on_add, on_update, on_delete))
        if self.has_synced and on_add is not None:
            for obj in self.indexer.list():
                on_add(obj)

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        self.indexer.add_indexer(name, func)

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_for_sync(self) -> None:
        await self._synced.wait()

    # ----------------------------------------------------------------- reading

    def get(self, key: str) -> Obj | None:
        return self.indexer.get(key)

    def list(self) -> list[Obj]:
        return self.indexer.list()

    def by_index(self, name: str, value: str) -> list[Obj]:
        return self.indexer.by_index(name, value)

    # ----------------------------------------------------------------- running

    @property
    def is_started(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> asyncio.Task[Any]:
        """Run in the background (idempotent: a shared informer is started once)."""
        if not self.is_started:
            self._task = asyncio.create_task(self.run(), name=f"informer:{self.resource}")
        assert self._task is not None
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        """Run until cancelled: list, then watch-and-resume; re-list on 410.

        Run again after a cancel, an informer resumes from its last resourceVersion (no re-list
        unless the server has compacted past it).
        """
        need_list = not self.has_synced or self.last_resource_version is None
        failures = 0
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                started = asyncio.get_running_loop().time()
                events = await self._watch_once()
                failures = 0
                if events == 0 and asyncio.get_running_loop().time() - started < 0.1:
                    await asyncio.sleep(self.retry_delay)  # a server closing watches at once must not make us spin
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                log.info("informer %s: watch from %s expired; re-listing", self.resource, self.last_resource_version)
                need_list = True
            except (ApiConnectionError, ApiError, OSError) as exc:
                failures += 1
                delay = min(30.0, self.retry_delay * 2 ** min(failures, 6)) * (0.5 + random.random())
                log.warning("informer %s: %s; retrying in %.1fs", self.resource, exc, delay)
                await asyncio.sleep(delay)

    async def _list_and_replace(self) -> None:
        result = await self.client.list(self.resource, namespace=self.namespace, label_selector=self.label_selector,
                                        field_selector=self.field_selector, limit=self.page_size)
        self.replace(result.get("items") or [], (result.get("metadata") or {}).get("resourceVersion"))

    def replace(self, items: list[Obj], list_resource_version: str | None) -> SnapshotDiff:
        """Adopt a fresh list: update the cache and emit the synthetic diff (the first list: all adds)."""
        kind = self.resource
        diff = diff_snapshot(self.indexer.snapshot(), items)
        for obj in diff.deleted:
            self.indexer.remove(obj)
        for obj in diff.added:
            self.indexer.upsert(obj)
        for _, obj in diff.updated:
            self.indexer.upsert(obj)
        self.last_resource_version = list_resource_version
        if self.has_synced:
            self.relists += 1
        self._synced.set()
        for obj in diff.deleted:
            self._emit("DELETED", obj, None)
        for obj in diff.added:
            self._emit("ADDED", obj, None)
        for old, obj in diff.updated:
            self._emit("MODIFIED", obj, old)
        log.debug("informer %s: list at %s: +%d ~%d -%d", kind, list_resource_version, len(diff.added), len(diff.updated), len(diff.deleted))
        return diff

    async def _watch_once(self) -> int:
        """One watch request from the last resourceVersion; returns how many events it carried."""
        stream = self.client.watch(self.resource, namespace=self.namespace, resource_version=self.last_resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector,
                                   timeout_seconds=self.watch_timeout_seconds)
        count = 0
        try:
            async for etype, obj in stream:
                count += 1
                self.apply_event(etype, obj)
                self.last_resource_version = stream.resource_version
            self.last_resource_version = stream.resource_version or self.last_resource_version
        finally:
            await stream.aclose()
        return count

    def apply_event(self, etype: str, obj: Obj) -> None:
        """Fold one watch event into the cache and call handlers."""
        if etype == "DELETED":
            old = self.indexer.remove(obj)
            self._emit("DELETED", obj, old)
        elif etype in ("ADDED", "MODIFIED"):
            old = self.indexer.upsert(obj)
            self._emit("MODIFIED" if old is not None else "ADDED", obj, old)

    def _emit(self, etype: str, obj: Obj, old: Obj | None) -> None:
        for on_add, on_update, on_delete in self._handlers:
            try:
                if etype == "ADDED" and on_add:
                    on_add(obj)
                elif etype == "MODIFIED" and on_update:
                    on_update(old if old is not None else obj, obj)
                elif etype == "DELETED" and on_delete:
                    on_delete(obj)
            except Exception:  # a broken handler must not kill the informer for everybody
                log.exception("informer %s: %s handler failed", self.resource, etype)


class InformerFactory:
    """Shared informers: one list + watch per (resource, namespace, selectors), however many
    controllers ask for it (client-go's SharedInformerFactory). Indexes are added per name."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[str, str | None, str | None, str | None], Informer] = {}

    def informer(self, resource: str, *, namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None, indexers: dict[str, IndexFunc] | None = None) -> Informer:
        key = (resource, namespace, label_selector, field_selector)
        informer = self._informers.get(key)
        if informer is None:
            informer = self._informers[key] = Informer(self.client, resource, namespace=namespace,
                                                       label_selector=label_selector, field_selector=field_selector)
        for name, func in (indexers or {}).items():
            if name not in informer.indexer._index_funcs:
                informer.add_indexer(name, func)
        return informer

    def start(self) -> None:
        for informer in self._informers.values():
            informer.start()

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in self._informers.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
