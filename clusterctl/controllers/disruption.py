"""Disruption: the status of every PodDisruptionBudget (Kubernetes' disruption controller).

``reconcile(namespace/pdb)`` finds the pods the budget's selector matches in its namespace and
writes ``status``: ``expectedPods``, ``currentHealthy`` (Ready and not being deleted),
``desiredHealthy``, ``disruptionsAllowed`` (``currentHealthy - desiredHealthy``, never below 0, and
0 when no pod is expected), ``observedGeneration`` and the ``DisruptionAllowed`` condition
(``SufficientPods`` / ``InsufficientPods``). That is what ``kubectl get pdb`` prints as ALLOWED
DISRUPTIONS and what tools read before draining.

How many pods are *expected* follows Kubernetes:
- ``minAvailable`` as a number: the pods that exist count (``expectedPods`` = their number);
- ``maxUnavailable``, or ``minAvailable`` as a percentage: the scale of the pods' controllers
  (a ReplicaSet owned by a Deployment counts the Deployment's replicas; StatefulSets, ReplicaSets),
  so a missing pod that is being recreated still counts. A matching pod without such a controller
  makes the budget unusable: ``disruptionsAllowed`` 0 and a ``SyncFailed``-reason condition naming
  the pod, as Kubernetes does.
The eviction subresource (``clusterctl.api.pod_actions``) decides each eviction from the live
pods itself; this status is the published view of the same arithmetic.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.errors import NotFound
from clusterctl.client.rest import ApiClient, Obj
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)


class BudgetError(Exception):
    """The budget's expected pod count cannot be worked out (e.g. a pod without a scalable controller)."""


def scaled_value(value: Any, total: int, *, round_up: bool = True) -> int:
    """An ``IntOrString`` of a budget against ``total``: ``3`` → 3, ``"50%"`` of 5 → 3 (rounded up)."""
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            pct = int(text[:-1] or 0)
            return math.ceil(total * pct / 100) if round_up else math.floor(total * pct / 100)
        return int(text)
    return int(value)


def is_percentage(value: Any) -> bool:
    return isinstance(value, str) and value.strip().endswith("%")


def healthy(pod: Obj) -> bool:
    return P.is_ready(pod) and not P.is_terminating(pod)


def budget_status(pdb: Obj, pods: list[Obj], scale_of: Any) -> dict[str, Any]:
    """The status numbers for ``pdb`` over its matching ``pods``.

    ``scale_of(pod)`` returns ``(controller key, replicas)`` of the pod's scalable controller, or
    None when it has none; it is only asked when the budget needs controllers' scale.
    Raises ``BudgetError`` when it needs a scale it cannot get.
    """
    spec = pdb.get("spec") or {}
    current = sum(1 for p in pods if healthy(p))
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None or is_percentage(min_available):
        scales: dict[str, int] = {}
        for pod in pods:
            found = scale_of(pod)
            if found is None:
                raise BudgetError(f"found no controller ref for pod {P.meta(pod).get('name')!r}")
            scales[found[0]] = found[1]
        expected = sum(scales.values())
        if max_unavailable is not None:
            desired = max(0, expected - scaled_value(max_unavailable, expected))
        else:
            desired = scaled_value(min_available, expected)
    elif min_available is not None:
        expected = len(pods)
        desired = scaled_value(min_available, expected)
    else:
        expected, desired = len(pods), 0
    allowed = current - desired
    if expected <= 0 or allowed < 0:
        allowed = 0
    return {"expectedPods": expected, "currentHealthy": current, "desiredHealthy": desired, "disruptionsAllowed": allowed}


class DisruptionController(Controller):
    name = "disruption-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.budgets = informers.get("poddisruptionbudgets")
        self.pods = informers.get("pods")
        self.replicasets = informers.get("replicasets")
        self.deployments = informers.get("deployments")
        self.statefulsets = informers.get("statefulsets")
        self.watch(self.budgets)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        # a controller's scale is part of the arithmetic: resync budgets of its namespace when it changes
        for informer in (self.replicasets, self.deployments, self.statefulsets):
            informer.add_handler(on_add=self._namespace_changed, on_update=lambda old, new: self._namespace_changed(new),
                                 on_delete=self._namespace_changed)

    def _namespace_changed(self, obj: Obj) -> None:
        ns = P.meta(obj).get("namespace")
        for pdb in self.budgets.by_index("namespace", ns):
            self.queue.add(f"{ns}/{P.meta(pdb)['name']}")

    def _pod_changed(self, pod: Obj) -> None:
        ns = P.meta(pod).get("namespace")
        for pdb in self.budgets.by_index("namespace", ns):
            selector = P.selector_of((pdb.get("spec") or {}).get("selector"))
            if selector is not None and not selector.empty and P.matches(selector, pod):
                self.queue.add(f"{ns}/{P.meta(pdb)['name']}")

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        self._pod_changed(pod)
        if (P.meta(old).get("labels") or {}) != (P.meta(pod).get("labels") or {}):
            self._pod_changed(old)

    def scale_of(self, pod: Obj) -> tuple[str, int] | None:
        ref = P.controller_ref(pod)
        if ref is None:
            return None
        ns = P.meta(pod).get("namespace")
        if ref.get("kind") == "StatefulSet":
            sts = self.statefulsets.get(f"{ns}/{ref.get('name')}")
            if sts is None or P.meta(sts).get("uid") != ref.get("uid"):
                return None
            return f"StatefulSet/{ns}/{ref['name']}", int((sts.get("spec") or {}).get("replicas", 1))
        if ref.get("kind") == "ReplicaSet":
            rs = self.replicasets.get(f"{ns}/{ref.get('name')}")
            if rs is None or P.meta(rs).get("uid") != ref.get("uid"):
                return None
            owner = P.controller_ref(rs)
            if owner is not None and owner.get("kind") == "Deployment":
                dep = self.deployments.get(f"{ns}/{owner.get('name')}")
                if dep is not None and P.meta(dep).get("uid") == owner.get("uid"):
                    return f"Deployment/{ns}/{owner['name']}", int((dep.get("spec") or {}).get("replicas", 1))
            return f"ReplicaSet/{ns}/{ref['name']}", int((rs.get("spec") or {}).get("replicas", 1))
        return None

    async def reconcile(self, key: str) -> None:
        pdb = self.budgets.get(key)
        if pdb is None or P.is_terminating(pdb):
            return
        m = P.meta(pdb)
        selector = P.selector_of((pdb.get("spec") or {}).get("selector"))
        pods = [] if selector is None or selector.empty else [
            p for p in self.pods.by_index("namespace", m.get("namespace")) if P.matches(selector, p) and not P.is_terminal(p)]
        old = pdb.get("status") or {}
        now = P.format_time(self.clock())
        try:
            numbers = budget_status(pdb, pods, self.scale_of)
        except BudgetError as exc:
            numbers = {"expectedPods": 0, "currentHealthy": sum(1 for p in pods if healthy(p)), "desiredHealthy": 0,
                       "disruptionsAllowed": 0}
            condition = {"type": "DisruptionAllowed", "status": "False", "reason": "SyncFailed", "message": str(exc)}
        else:
            sufficient = numbers["disruptionsAllowed"] > 0
            condition = {"type": "DisruptionAllowed", "status": "True" if sufficient else "False",
                         "reason": "SufficientPods" if sufficient else "InsufficientPods", "message": ""}
        condition["observedGeneration"] = m.get("generation")
        status: dict[str, Any] = {**numbers, "observedGeneration": m.get("generation"),
                                  "disruptedPods": old.get("disruptedPods") or {},
                                  "conditions": P.set_condition(list(old.get("conditions") or []), condition, now)}
        if all(old.get(k) == v for k, v in status.items() if k not in ("conditions", "disruptedPods")) and \
                _same_conditions(old.get("conditions") or [], status["conditions"]):
            return
        try:
            await self.client.patch("poddisruptionbudgets", m["name"], {"status": status}, namespace=m.get("namespace"),
                                     subresource="status")
        except NotFound:
            return


def _same_conditions(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> bool:
    strip = lambda conds: [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in conds]  # noqa: E731
    return strip(old) == strip(new)
