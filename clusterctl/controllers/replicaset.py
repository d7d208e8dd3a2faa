"""The ReplicaSet controller: keep ``spec.replicas`` pods matching the selector alive.

``reconcile(namespace/name)``:
1. claim pods — owned ones whose labels still match are kept; owned ones that no longer match
   are released (ownerReference removed); matching orphans are adopted (not while the
   ReplicaSet itself is being deleted);
2. if the expectations of earlier creates/deletes are satisfied (see ``expectations``), create
   the missing pods (``<rs>-<5 random chars>``, in slow-start batches 1, 2, 4, ... so a broken
   template fails once, not 500 times) or delete the surplus, choosing victims in
   ``pods.deletion_rank`` order (unscheduled < pending < not ready < ready, newer first);
3. write status: replicas, fullyLabeledReplicas, readyReplicas, availableReplicas
   (``minReadySeconds``), observedGeneration — only when it changed.
A ready pod that becomes available later (``minReadySeconds``) requeues the key for that moment.
Pods being deleted (``deletionTimestamp``) do not count: a replacement is created at once, which
is what lets a rolling update keep capacity while old pods drain.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound, TemporaryError
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.expectations import Expectations
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

BURST_REPLICAS = 500


class ReplicaSetController(Controller):
    name = "replicaset-controller"
    resource = "replicasets"
    kind = "ReplicaSet"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 4,
                 clock: Callable[[], float] = time.time, expectations_ttl: float = 300.0) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.sets = informers.get(self.resource)
        self.pods = informers.get("pods")
        self.expectations = Expectations(ttl=expectations_ttl)
        self.events = EventRecorder(client, component=self.name)
        self.watch(self.sets)
        self.pods.add_handler(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)

    # ----------------------------------------------------------------- event handlers

    def _owner_key(self, pod: Obj) -> str | None:
        key = P.controller_key(pod, self.kind)
        if key is None:
            return None
        owner = self.sets.get(key)
        if owner is None or P.meta(owner).get("uid") != P.controller_ref(pod).get("uid"):
            return None
        return key

    def _enqueue_matching(self, pod: Obj) -> None:
        ns = P.meta(pod).get("namespace")
        for rs in self.sets.by_index("namespace", ns):
            if P.matches(P.selector_of((rs.get("spec") or {}).get("selector")), pod):
                self.queue.add(object_key(rs))

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            if P.is_terminating(pod):
                self.expectations.deletion_observed(key, object_key(pod))
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif P.controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            if P.is_terminating(pod) and not P.is_terminating(old):
                self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)
        old_key = self._owner_key(old)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)
        if P.controller_ref(pod) is None:
            self._enqueue_matching(pod)
            if (P.meta(old).get("labels") or {}) != (P.meta(pod).get("labels") or {}):
                self._enqueue_matching(old)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    # ----------------------------------------------------------------- reconcile

    async def reconcile(self, key: str) -> None:
        rs = self.sets.get(key)
        if rs is None:
            self.expectations.forget(key)
            return
        spec = rs.get("spec") or {}
        selector = P.selector_of(spec.get("selector"))
        owned = await self.claim_pods(rs, selector)
        active = [p for p in owned if P.is_active(p)]
        if self.expectations.satisfied(key) and not P.is_terminating(rs):
            await self.manage_replicas(rs, key, active)
        await self.update_status(rs, owned, active)
        wait = self._next_availability(active, int(spec.get("minReadySeconds") or 0))
        if wait is not None:
            self.queue.add_after(key, wait + 0.05)

    async def claim_pods(self, rs: Obj, selector: Any) -> list[Obj]:
        """Owned pods after adopting matching orphans and releasing non-matching children."""
        uid = P.meta(rs).get("uid")
        ns = P.meta(rs).get("namespace")
        owned: list[Obj] = []
        for pod in self.pods.by_index("owner", uid):
            if P.matches(selector, pod):
                owned.append(pod)
            elif not P.is_terminating(pod):
                await self._set_owner(pod, None, uid)
        if P.is_terminating(rs) or selector is None or selector.empty:
            return owned
        for pod in self.pods.by_index("orphans", ns):
            if P.is_active(pod) and P.matches(selector, pod):
                adopted = await self._set_owner(pod, rs, uid)
                if adopted is not None:
                    owned.append(adopted)
        return owned

    async def _set_owner(self, pod: Obj, owner: Obj | None, uid: str) -> Obj | None:
        m = P.meta(pod)
        refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != uid]
        if owner is not None:
            refs.append(P.owner_reference(owner))
        patch = {"metadata": {"ownerReferences": refs or None, "resourceVersion": m.get("resourceVersion")}}
        try:
            return await self.client.patch("pods", m["name"], patch, namespace=m.get("namespace"))
        except (NotFound, Conflict):
            return None  # gone or changed: the informer event brings us back

    async def manage_replicas(self, rs: Obj, key: str, active: list[Obj]) -> None:
        desired = int((rs.get("spec") or {}).get("replicas") or 0)
        diff = len(active) - desired
        if diff < 0:
            await self.create_pods(rs, key, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            victims = sorted(active, key=P.deletion_rank)[:min(diff, BURST_REPLICAS)]
            await self.delete_pods(key, victims)

    def pod_name_prefix(self, rs: Obj) -> str:
        return P.meta(rs)["name"][:57]

    async def create_pods(self, rs: Obj, key: str, count: int) -> None:
        self.expectations.expect_creations(key, count)
        m = P.meta(rs)
        template = (rs.get("spec") or {}).get("template") or {}
        batch, left = 1, count
        while left > 0:
            size = min(batch, left)
            results = await asyncio.gather(*(self._create_one(rs, template, m) for _ in range(size)), return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            for r in failed:
                if isinstance(r, asyncio.CancelledError):
                    raise r
            left -= size
            if failed:
                # the remaining creates will not happen now: do not wait to observe them
                for _ in range(len(failed) + left):
                    self.expectations.creation_observed(key)
                err = failed[0]
                await self.events.record(rs, "Warning", "FailedCreate", f"Error creating: {err}")
                raise err
            batch *= 2

    async def _create_one(self, rs: Obj, template: Obj, m: dict[str, Any]) -> Obj:
        for _ in range(5):
            name = f"{self.pod_name_prefix(rs)}-{P.random_suffix()}"
            pod = P.pod_from_template(template, name=name, namespace=m["namespace"], owner=rs)
            try:
                return await self.client.create(pod)
            except AlreadyExists:
                continue
        raise TemporaryError(f"no free pod name for {m['namespace']}/{m['name']} after 5 tries")

    async def delete_pods(self, key: str, victims: list[Obj]) -> None:
        self.expectations.expect_deletions(key, [object_key(p) for p in victims])

        async def one(pod: Obj) -> None:
            pm = P.meta(pod)
            try:
                await self.client.delete("pods", pm["name"], namespace=pm.get("namespace"), preconditions={"uid": pm.get("uid")})
            except (NotFound, Conflict):
                self.expectations.deletion_observed(key, object_key(pod))

        results = await asyncio.gather(*(one(p) for p in victims), return_exceptions=True)
        for pod, r in zip(victims, results):
            if isinstance(r, BaseException):
                self.expectations.deletion_observed(key, object_key(pod))
                if isinstance(r, asyncio.CancelledError):
                    raise r
                raise r

    # ----------------------------------------------------------------- status

    def compute_status(self, rs: Obj, owned: list[Obj], active: list[Obj]) -> dict[str, Any]:
        spec = rs.get("spec") or {}
        now = self.clock()
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        fully = sum(1 for p in active if all((P.meta(p).get("labels") or {}).get(k) == v for k, v in template_labels.items()))
        status: dict[str, Any] = {
            "replicas": len(active),
            "fullyLabeledReplicas": fully,
            "readyReplicas": sum(1 for p in active if P.is_ready(p)),
            "availableReplicas": sum(1 for p in active if P.is_available(p, min_ready, now)),
            "observedGeneration": int(P.meta(rs).get("generation") or 0),
        }
        old = rs.get("status") or {}
        if old.get("conditions"):
            status["conditions"] = old["conditions"]
        return status

    async def update_status(self, rs: Obj, owned: list[Obj], active: list[Obj]) -> None:
        status = self.compute_status(rs, owned, active)
        old = rs.get("status") or {}
        if all(old.get(k, 0) == v for k, v in status.items() if k != "conditions"):
            return
        m = P.meta(rs)
        try:
            await self.client.patch(self.resource, m["name"], {"status": status}, namespace=m.get("namespace"), subresource="status")
        except NotFound:
            return

    def _next_availability(self, active: list[Obj], min_ready: int) -> float | None:
        if min_ready <= 0:
            return None
        now = self.clock()
        waits = [w for p in active if (w := P.seconds_until_available(p, min_ready, now)) is not None]
        return min(waits) if waits else None

