"""Where every view's objects come from: one shared informer per resource, and the connection state.

Views never list the store: a ``ClusterSource`` owns an ``Informer`` per resource (list once, then
watch) and calls the app back with changed keys. ``TrackedInformer`` adds what a dashboard needs on
top of the client's informer: it reports "connected"/"disconnected", retries a lost API server at a
short bounded interval, and re-lists after every reconnect so the screen converges on the truth
(the re-list's synthetic diff is delivered like any other change).

``ClusterSource.static(objects)`` builds the same informers fed directly (no server): the example
apps, snapshot tests and the benchmark use it, and ``apply`` folds events into it exactly as a watch
would.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from clusterctl.client.errors import ApiConnectionError, ApiError, WatchExpired
from clusterctl.client.informer import Informer, index_pods_by_node
from clusterctl.client.rest import ApiClient, Obj

log = logging.getLogger(__name__)

#: the resources the TUI watches (plural → kind)
WATCHED: dict[str, str] = {
    "nodes": "Node", "pods": "Pod", "namespaces": "Namespace", "events": "Event", "services": "Service",
    "endpoints": "Endpoints", "deployments": "Deployment", "replicasets": "ReplicaSet", "daemonsets": "DaemonSet",
    "statefulsets": "StatefulSet", "jobs": "Job", "cronjobs": "CronJob",
}
KIND_TO_RESOURCE = {kind: plural for plural, kind in WATCHED.items()}

ChangeCallback = Callable[[str, str, float], None]  # (resource, key, monotonic time the event arrived)
StateCallback = Callable[[bool, str], None]  # (connected, detail)


class TrackedInformer(Informer):
    """An ``Informer`` that reports connection state and re-lists after every reconnect."""

    def __init__(self, client: ApiClient | None, resource: str, *, on_state: StateCallback | None = None,
                 max_retry_delay: float = 2.0, **kwargs: Any) -> None:
        super().__init__(client, resource, **kwargs)  # type: ignore[arg-type]
        self.on_state = on_state
        self.max_retry_delay = max_retry_delay
        self.connected = False
        self.last_error = ""

    def _set_state(self, connected: bool, detail: str = "") -> None:
        changed = connected != self.connected or (not connected and detail != self.last_error)
        self.connected, self.last_error = connected, detail
        if changed and self.on_state is not None:
            self.on_state(connected, detail)

    async def run(self) -> None:
        need_list = True
        failures = 0
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                    self._set_state(True)
                started = time.monotonic()
                events = await self._watch_once()
                failures = 0
                if events == 0 and time.monotonic() - started < 0.1:
                    await asyncio.sleep(self.retry_delay)
            except asyncio.CancelledError:
                raise
            except WatchExpired:
                need_list = True
            except (ApiConnectionError, ApiError, OSError, asyncio.TimeoutError) as exc:
                failures += 1
                if isinstance(exc, (ApiConnectionError, OSError, asyncio.TimeoutError)):
                    self._set_state(False, str(exc) or type(exc).__name__)
                    need_list = True  # whatever happened while we were away: converge by a fresh list
                delay = min(self.max_retry_delay, self.retry_delay * 2 ** min(failures, 6)) * (0.5 + random.random() / 2)
                log.info("tui informer %s: %s; retrying in %.2fs", self.resource, exc, delay)
                await asyncio.sleep(delay)


class ClusterSource:
    """The informers of every watched resource, shared by all views."""

    def __init__(self, client: ApiClient | None, *, resources: Iterable[str] = WATCHED, retry_delay: float = 0.2,
                 max_retry_delay: float = 2.0) -> None:
        self.client = client
        self.informers: dict[str, TrackedInformer] = {}
        self._on_change: list[ChangeCallback] = []
        self._on_state: list[StateCallback] = []
        self.connected = client is None
        self.detail = "static data" if client is None else "connecting"
        for resource in resources:
            inf = TrackedInformer(client, resource, on_state=self._informer_state, retry_delay=retry_delay,
                                  max_retry_delay=max_retry_delay, watch_timeout_seconds=120,
                                  indexers={"node": index_pods_by_node} if resource == "pods" else None)
            inf.add_handler(on_add=self._changed(resource), on_update=self._updated(resource), on_delete=self._changed(resource))
            self.informers[resource] = inf

    # ----------------------------------------------------------------- building

    @classmethod
    def static(cls, objects: Iterable[Obj]) -> ClusterSource:
        """A source fed from ``objects`` (any kinds) with no server behind it."""
        source = cls(None)
        grouped: dict[str, list[Obj]] = {r: [] for r in source.informers}
        for obj in objects:
            resource = KIND_TO_RESOURCE.get(obj.get("kind", ""))
            if resource is not None:
                grouped[resource].append(obj)
        for resource, items in grouped.items():
            source.informers[resource].replace(items, "1")
        return source

    # ----------------------------------------------------------------- callbacks

    def subscribe(self, on_change: ChangeCallback | None = None, on_state: StateCallback | None = None) -> None:
        if on_change is not None:
            self._on_change.append(on_change)
        if on_state is not None:
            self._on_state.append(on_state)

    def _changed(self, resource: str) -> Callable[[Obj], None]:
        def handler(obj: Obj) -> None:
            self._emit(resource, obj)
        return handler

    def _updated(self, resource: str) -> Callable[[Obj, Obj], None]:
        def handler(_old: Obj, obj: Obj) -> None:
            self._emit(resource, obj)
        return handler

    def _emit(self, resource: str, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        key = f"{meta['namespace']}/{meta.get('name')}" if meta.get("namespace") else str(meta.get("name"))
        now = time.monotonic()
        for cb in self._on_change:
            cb(resource, key, now)

    def _informer_state(self, connected: bool, detail: str) -> None:
        # connected only when every informer is; one lost informer is enough to say "disconnected"
        overall = all(i.connected for i in self.informers.values()) if connected else False
        if overall != self.connected or (not overall and detail != self.detail):
            self.connected, self.detail = overall, ("connected" if overall else detail)
            for cb in self._on_state:
                cb(overall, self.detail)

    # ----------------------------------------------------------------- reading / feeding

    def list(self, resource: str) -> list[Obj]:
        return self.informers[resource].list()

    def get(self, resource: str, key: str) -> Obj | None:
        return self.informers[resource].get(key)

    def apply(self, etype: str, obj: Obj) -> None:
        """Fold one watch event (of any watched kind) into its informer, as a watch would."""
        resource = KIND_TO_RESOURCE[obj["kind"]]
        self.informers[resource].apply_event(etype, obj)

    # ----------------------------------------------------------------- running

    def start(self) -> None:
        if self.client is None:
            return
        for inf in self.informers.values():
            inf.start()

    async def stop(self) -> None:
        await asyncio.gather(*(inf.stop() for inf in self.informers.values()), return_exceptions=True)
