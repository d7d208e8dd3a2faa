"""Shared informers: one list+watch per resource for every controller of a process.

Controllers register handlers on the same ``Informer`` objects (client-go's
``SharedInformerFactory``); ``start()`` runs each once and ``wait_for_sync()`` waits for all
caches. Pods are indexed by controlling owner uid and by node, the two questions every workload
controller and the node lifecycle controller ask.
"""

from __future__ import annotations

import asyncio
from typing import Any

from clusterctl.client.informer import Informer, index_by_owner_uid, index_pods_by_node
from clusterctl.client.rest import ApiClient, Obj


def index_by_controller_uid(obj: Obj) -> list[str]:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("uid"):
            return [ref["uid"]]
    return []


def index_orphans_by_namespace(obj: Obj) -> list[str]:
    """Objects without a controlling owner, by namespace: what adoption has to look at."""
    meta = obj.get("metadata") or {}
    if any(ref.get("controller") for ref in meta.get("ownerReferences") or []):
        return []
    return [meta.get("namespace") or ""]


_INDEXERS = {
    "pods": {"owner": index_by_controller_uid, "node": index_pods_by_node, "any_owner": index_by_owner_uid,
             "orphans": index_orphans_by_namespace},
}


class SharedInformers:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[tuple[str, str | None], Informer] = {}
        self._tasks: list[asyncio.Task[Any]] = []

    def get(self, resource: str, *, namespace: str | None = None) -> Informer:
        key = (resource, namespace)
        informer = self._informers.get(key)
        if informer is None:
            indexers = dict(_INDEXERS.get(resource, {"owner": index_by_controller_uid}))
            informer = Informer(self.client, resource, namespace=namespace, indexers=indexers)
            self._informers[key] = informer
        return informer

    def start(self) -> None:
        for (resource, ns), informer in self._informers.items():
            if not any(t.get_name() == f"informer:{resource}:{ns}" for t in self._tasks):
                self._tasks.append(asyncio.create_task(informer.run(), name=f"informer:{resource}:{ns}"))

    async def wait_for_sync(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in self._informers.values()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
