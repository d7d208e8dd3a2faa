"""The garbage collector's sweep: dependents whose owners are all gone are deleted.

The API server already does ownerReference propagation as Kubernetes' garbage collector would
(``clusterctl.api.lifecycle``: Orphan strips references before the owner goes; Foreground holds the
owner under the ``foregroundDeletion`` finalizer until dependents with ``blockOwnerDeletion`` are
gone; Background spawns a collector right after the owner is removed). What it cannot do is
survive its own crash between removing an owner and collecting its dependents, or notice owners
that are removed by something other than a DELETE (a namespace cleanup mid-way, a restore). This
controller closes that gap: on every change of a dependent, and on a periodic sweep
(``interval``), a dependent whose every owner is absent is deleted (Background).

Absent is decided twice: first from the informer caches of owner kinds (cheap), then confirmed by
a live GET of the owner (a cache behind the API must never make us delete a live pod's children);
an owner with the same name but another uid counts as absent. The delete carries a uid
precondition so a recreated dependent of the same name is never hit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.errors import Conflict, NotFound
from clusterctl.client.rest import ApiClient, object_key, split_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

#: dependents we sweep → owners we can look up: (apiVersion, kind) → (resource, namespaced)
DEPENDENTS = ("pods", "replicasets", "jobs", "endpointslices", "controllerrevisions")
OWNERS: dict[str, tuple[str, bool]] = {
    "Deployment": ("deployments", True), "ReplicaSet": ("replicasets", True), "StatefulSet": ("statefulsets", True),
    "DaemonSet": ("daemonsets", True), "Job": ("jobs", True), "CronJob": ("cronjobs", True), "Service": ("services", True),
    "Node": ("nodes", False), "Pod": ("pods", True),
}


class GarbageCollector(Controller):
    name = "garbage-collector-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, interval: float = 30.0, workers: int = 2,
                 dependents: tuple[str, ...] = ("pods", "replicasets", "jobs", "endpointslices")) -> None:
        super().__init__(client, workers=workers)
        self.interval = interval
        self.shared = informers
        self.dependents = {r: informers.get(r) for r in dependents}
        for resource, informer in self.dependents.items():
            self.watch(informer, lambda obj, r=resource: f"{r}|{object_key(obj)}" if P.meta(obj).get("ownerReferences") else None)
        self.deleted = 0

    async def run(self) -> None:
        sweeper = asyncio.create_task(self._sweep_forever(), name=f"{self.name}:sweep")
        try:
            await super().run()
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.sweep()

    def sweep(self) -> None:
        for resource, informer in self.dependents.items():
            for obj in informer.list():
                if P.meta(obj).get("ownerReferences"):
                    self.queue.add(f"{resource}|{object_key(obj)}")

    async def reconcile(self, key: str) -> None:
        resource, _, okey = key.partition("|")
        obj = self.dependents[resource].get(okey)
        if obj is None or P.is_terminating(obj):
            return
        refs = P.meta(obj).get("ownerReferences") or []
        namespace = P.meta(obj).get("namespace")
        for ref in refs:
            if await self.owner_exists(ref, namespace):
                return
        if not refs:
            return
        ns, name = split_key(okey)
        try:
            await self.client.delete(resource, name, namespace=ns, propagation_policy="Background",
                                     preconditions={"uid": P.meta(obj).get("uid")})
            self.deleted += 1
            log.info("garbage collector: deleted %s %s: every owner is gone", resource, okey)
        except (NotFound, Conflict):
            pass

    async def owner_exists(self, ref: dict[str, Any], namespace: str | None) -> bool:
        kind = ref.get("kind")
        if kind not in OWNERS:
            return True  # an owner kind we cannot look up: never guess
        resource, namespaced = OWNERS[kind]
        ns = namespace if namespaced else None
        cached_key = f"{ns}/{ref.get('name')}" if ns else str(ref.get("name"))
        informer = self.shared._informers.get((resource, None))
        if informer is not None and informer.has_synced:
            cached = informer.get(cached_key)
            if cached is not None and P.meta(cached).get("uid") == ref.get("uid"):
                return True
        try:
            live = await self.client.get(resource, str(ref.get("name")), namespace=ns)
        except NotFound:
            return False
        return P.meta(live).get("uid") == ref.get("uid")
