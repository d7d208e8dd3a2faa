"""The StatefulSet controller: stable, ordered pods ``<set>-0 .. <set>-(N-1)``.

``OrderedReady`` (the default): pod ``i`` is created only when pods ``0..i-1`` are Running and
Ready; scale-down deletes the highest ordinal first, one at a time, and only while every
lower pod is Running and Ready — Kubernetes' guarantees for databases that elect by ordinal.
``Parallel`` creates and deletes without waiting. Pods get ``hostname`` = their name and
``subdomain`` = ``spec.serviceName`` (stable DNS through the headless Service), the labels
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index`` and
``controller-revision-hash``. A pod that failed or was deleted is recreated under the same name.
RollingUpdate replaces outdated pods from the highest ordinal down to ``partition``, one at a
time, each only after all pods are Ready; OnDelete leaves that to the user.
``volumeClaimTemplates`` are not provisioned (there is no volume provisioner yet).
Status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
currentRevision, updateRevision, observedGeneration.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.controllers import pods as P
from clusterctl.controllers.deployment import template_hash
from clusterctl.controllers.shared import SharedInformers

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal(set_name: str, pod: Obj) -> int | None:
    name = P.meta(pod).get("name") or ""
    prefix = f"{set_name}-"
    if not name.startswith(prefix) or not name[len(prefix):].isdigit():
        return None
    return int(name[len(prefix):])


def running_and_ready(pod: Obj | None) -> bool:
    return pod is not None and P.is_active(pod) and (pod.get("status") or {}).get("phase") == "Running" and P.is_ready(pod)


class StatefulSetController(Controller):
    name = "statefulset-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2, clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.sets = informers.get("statefulsets")
        self.pods = informers.get("pods")
        self.watch(self.sets)
        self.watch(self.pods, self._owner_key)

    def _owner_key(self, pod: Obj) -> str | None:
        return P.controller_key(pod, "StatefulSet")

    async def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None or P.is_terminating(sts):
            return
        m, spec = P.meta(sts), sts.get("spec") or {}
        name = m["name"]
        replicas = int(spec.get("replicas") if spec.get("replicas") is not None else 1)
        parallel = spec.get("podManagementPolicy") == "Parallel"
        revision = template_hash(spec.get("template") or {})
        pods: dict[int, Obj] = {}
        for pod in self.pods.by_index("owner", m.get("uid")):
            i = ordinal(name, pod)
            if i is not None:
                pods[i] = pod
        await self.sync_pods(sts, pods, replicas, parallel, revision)
        await self.update_status(sts, pods, replicas, revision)

    async def sync_pods(self, sts: Obj, pods: dict[int, Obj], replicas: int, parallel: bool, revision: str) -> None:
        # failed pods are replaced under the same name
        for i, pod in sorted(pods.items()):
            if P.is_terminal(pod) and not P.is_terminating(pod):
                await self._delete(pod)
                return
        for i in range(replicas):
            pod = pods.get(i)
            if pod is None:
                await self._create(sts, i, revision)
                if not parallel:
                    return  # the next ordinal waits for this one to be Running and Ready
                continue
            if not parallel and not running_and_ready(pod):
                return
        surplus = sorted((i for i in pods if i >= replicas), reverse=True)
        if surplus:
            if not parallel and (any(P.is_terminating(pods[i]) for i in surplus)
                                 or not all(running_and_ready(pods.get(i)) for i in range(replicas))):
                return  # one at a time, only while the rest is healthy
            for i in surplus:
                if not P.is_terminating(pods[i]):
                    await self._delete(pods[i])
                    if not parallel:
                        return
            return
        strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return
        if not all(running_and_ready(pods.get(i)) for i in range(replicas)):
            return
        partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
        for i in range(replicas - 1, partition - 1, -1):
            if (P.meta(pods[i]).get("labels") or {}).get(REVISION_LABEL) != revision:
                await self._delete(pods[i])
                return

    async def _create(self, sts: Obj, i: int, revision: str) -> None:
        m = P.meta(sts)
        pod_name = f"{m['name']}-{i}"
        pod = P.pod_from_template((sts.get("spec") or {}).get("template") or {}, name=pod_name, namespace=m["namespace"], owner=sts,
                                  extra_labels={POD_NAME_LABEL: pod_name, POD_INDEX_LABEL: str(i), REVISION_LABEL: revision})
        pod["spec"]["hostname"] = pod_name
        if (sts.get("spec") or {}).get("serviceName"):
            pod["spec"]["subdomain"] = sts["spec"]["serviceName"]
        try:
            await self.client.create(pod)
        except AlreadyExists:
            pass  # still terminating under the same name, or our cache is behind: the next event brings us back

    async def _delete(self, pod: Obj) -> None:
        pm = P.meta(pod)
        try:
            await self.client.delete("pods", pm["name"], namespace=pm.get("namespace"), preconditions={"uid": pm.get("uid")})
        except (NotFound, Conflict):
            pass

    async def update_status(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> None:
        now = self.clock()
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        live = [p for p in pods.values() if P.is_active(p)]
        updated = [p for p in live if (P.meta(p).get("labels") or {}).get(REVISION_LABEL) == revision]
        old_status = sts.get("status") or {}
        current_revision = old_status.get("currentRevision") or revision
        if len(updated) == replicas == len(live):
            current_revision = revision
        status: dict[str, Any] = {
            "observedGeneration": int(P.meta(sts).get("generation") or 0),
            "replicas": len(live),
            "readyReplicas": sum(1 for p in live if P.is_ready(p)),
            "availableReplicas": sum(1 for p in live if P.is_available(p, min_ready, now)),
            "currentReplicas": sum(1 for p in live if (P.meta(p).get("labels") or {}).get(REVISION_LABEL) == current_revision),
            "updatedReplicas": len(updated),
            "currentRevision": current_revision,
            "updateRevision": revision,
            "collisionCount": int(old_status.get("collisionCount") or 0),
        }
        if all(old_status.get(k) == v for k, v in status.items()):
            return
        m = P.meta(sts)
        try:
            await self.client.patch("statefulsets", m["name"], {"status": status}, namespace=m.get("namespace"), subresource="status")
        except NotFound:
            pass

