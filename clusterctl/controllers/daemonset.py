"""The DaemonSet controller: one pod on every eligible node, nodes added later included.

A node is eligible when it matches the template's ``nodeSelector`` and required node affinity
(``matchExpressions`` on labels) and the pod tolerates every ``NoSchedule``/``NoExecute`` taint
on it — counting the tolerations Kubernetes adds to every daemon pod (not-ready and unreachable
``NoExecute`` forever; memory/disk/pid pressure and unschedulable ``NoSchedule``), so a cordoned
or failing node keeps its daemons while a tainted node the template does not tolerate is skipped.

Placement: pods are created with ``spec.nodeName`` set (the pre-1.12 Kubernetes way) rather than
a ``matchFields`` node affinity for the scheduler: our scheduler has no ``matchFields`` and a
daemon must land on its node whatever the node's free capacity is.

Updates: pods carry ``controller-revision-hash`` (the template hash, as the Deployment's). With
``RollingUpdate`` an outdated pod is deleted only while fewer than ``maxUnavailable`` (int or
percent of desired nodes, rounded up; default 1) daemon pods are unavailable; its node then gets
a pod of the new template. ``OnDelete`` replaces a pod only after someone deletes it.
Status: desiredNumberScheduled, currentNumberScheduled, numberMisscheduled, numberReady,
updatedNumberScheduled, numberAvailable, numberUnavailable, observedGeneration.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.deployment import template_hash
from clusterctl.controllers.expectations import Expectations
from clusterctl.controllers.shared import SharedInformers

REVISION_LABEL = "controller-revision-hash"

DAEMON_TOLERATIONS = [
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
]


def _term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        has = key in labels
        value = labels.get(key)
        ok = {"In": has and value in values, "NotIn": not has or value not in values, "Exists": has, "DoesNotExist": not has,
              "Gt": has and _num(value) is not None and values and _num(value) > _num(values[0]),  # type: ignore[operator]
              "Lt": has and _num(value) is not None and values and _num(value) < _num(values[0])}.get(op, False)  # type: ignore[operator]
        if not ok:
            return False
    return True


def _num(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def node_eligible(pod_spec: dict[str, Any], node: Obj) -> bool:
    """Would a daemon pod with ``pod_spec`` belong on ``node``?"""
    labels = P.meta(node).get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(_term_matches(t, labels) for t in terms):
        return False
    tolerations = list(pod_spec.get("tolerations") or []) + DAEMON_TOLERATIONS
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and P.tolerates(tolerations, taint) is None:
            return False
    return True


class DaemonSetController(Controller):
    name = "daemonset-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 2, clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.sets = informers.get("daemonsets")
        self.nodes = informers.get("nodes")
        self.pods = informers.get("pods")
        self.expectations = Expectations()
        self.watch(self.sets)
        self.nodes.add_handler(on_add=self._all, on_update=lambda _o, _n: self._all(None), on_delete=self._all)
        self.pods.add_handler(on_add=self._pod_added, on_update=lambda _o, n: self._pod_changed(n), on_delete=self._pod_deleted)

    def _all(self, _obj: Obj | None) -> None:
        for ds in self.sets.list():
            self.queue.add(object_key(ds))

    def _owner_key(self, pod: Obj) -> str | None:
        return P.controller_key(pod, "DaemonSet")

    def _pod_added(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.creation_observed(key)
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            if P.is_terminating(pod):
                self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.deletion_observed(key, object_key(pod))
            self.queue.add(key)

    async def reconcile(self, key: str) -> None:
        ds = self.sets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        spec = ds.get("spec") or {}
        template = spec.get("template") or {}
        pod_spec = template.get("spec") or {}
        revision = template_hash(template)
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.clock()
        owned = [p for p in self.pods.by_index("owner", P.meta(ds).get("uid")) if not P.is_terminal(p)]
        by_node: dict[str, list[Obj]] = {}
        for pod in owned:
            by_node.setdefault((pod.get("spec") or {}).get("nodeName") or "", []).append(pod)
        nodes = {P.meta(n)["name"]: n for n in self.nodes.list()}
        eligible = {name for name, node in nodes.items() if node_eligible(pod_spec, node)}
        create: list[str] = []
        delete: list[Obj] = []
        for name in eligible:
            pods = sorted((p for p in by_node.get(name, []) if not P.is_terminating(p)),
                          key=lambda p: P.parse_time(P.meta(p).get("creationTimestamp")) or 0.0)
            if not pods and not any(P.is_terminating(p) for p in by_node.get(name, [])):
                create.append(name)
            delete.extend(pods[1:])  # one daemon per node: the oldest stays
        for name, pods in by_node.items():
            if name not in eligible:
                delete.extend(p for p in pods if not P.is_terminating(p))
        if self.expectations.satisfied(key) and not P.is_terminating(ds):
            delete.extend(self.outdated_to_replace(ds, eligible, by_node, revision, min_ready, now, exclude=delete))
            await self.apply(ds, key, create, delete, revision)
        await self.update_status(ds, eligible, by_node, revision, min_ready, now)

    def outdated_to_replace(self, ds: Obj, eligible: set[str], by_node: dict[str, list[Obj]], revision: str,
                            min_ready: int, now: float, *, exclude: list[Obj]) -> list[Obj]:
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return []
        raw = (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1)
        max_unavailable = max(1, _resolve_up(raw, len(eligible)))
        current = {n: [p for p in by_node.get(n, []) if not P.is_terminating(p)] for n in eligible}
        unavailable = sum(1 for n in eligible if not any(P.is_available(p, min_ready, now) for p in current[n]))
        budget = max_unavailable - unavailable
        out = []
        for n in sorted(eligible):
            pods = current[n]
            if budget <= 0:
                break
            old = [p for p in pods if (P.meta(p).get("labels") or {}).get(REVISION_LABEL) != revision and p not in exclude]
            if old and any(P.is_available(p, min_ready, now) for p in pods):
                out.extend(old)
                budget -= 1
        return out

    async def apply(self, ds: Obj, key: str, create: list[str], delete: list[Obj], revision: str) -> None:
        if create:
            self.expectations.expect_creations(key, len(create))
            results = await asyncio.gather(*(self._create(ds, node, revision) for node in create), return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    self.expectations.creation_observed(key)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                raise errors[0]
        if delete:
            self.expectations.expect_deletions(key, [object_key(p) for p in delete])
            for pod in delete:
                m = P.meta(pod)
                try:
                    await self.client.delete("pods", m["name"], namespace=m.get("namespace"), preconditions={"uid": m.get("uid")})
                except (NotFound, Conflict):
                    self.expectations.deletion_observed(key, object_key(pod))

    async def _create(self, ds: Obj, node: str, revision: str) -> Obj:
        m = P.meta(ds)
        template = (ds.get("spec") or {}).get("template") or {}
        for _ in range(5):
            pod = P.pod_from_template(template, name=f"{m['name'][:57]}-{P.random_suffix()}", namespace=m["namespace"], owner=ds,
                                      extra_labels={REVISION_LABEL: revision, "pod-template-generation": str(m.get("generation") or 1)})
            pod["spec"]["nodeName"] = node
            tolerations = list(pod["spec"].get("tolerations") or [])
            have = {(t.get("key"), t.get("effect")) for t in tolerations}
            pod["spec"]["tolerations"] = tolerations + [t for t in DAEMON_TOLERATIONS if (t["key"], t["effect"]) not in have]
            try:
                return await self.client.create(pod)
            except AlreadyExists:
                continue
        raise RuntimeError(f"no free pod name for daemonset {m['namespace']}/{m['name']}")

    async def update_status(self, ds: Obj, eligible: set[str], by_node: dict[str, list[Obj]], revision: str, min_ready: int, now: float) -> None:
        live = {n: [p for p in pods if not P.is_terminating(p)] for n, pods in by_node.items()}
        scheduled = [n for n in eligible if live.get(n)]
        status = {
            "desiredNumberScheduled": len(eligible),
            "currentNumberScheduled": len(scheduled),
            "numberMisscheduled": sum(1 for n, pods in live.items() if n not in eligible and pods),
            "numberReady": sum(1 for n in scheduled if any(P.is_ready(p) for p in live[n])),
            "updatedNumberScheduled": sum(1 for n in scheduled if any((P.meta(p).get("labels") or {}).get(REVISION_LABEL) == revision for p in live[n])),
            "numberAvailable": sum(1 for n in scheduled if any(P.is_available(p, min_ready, now) for p in live[n])),
            "observedGeneration": int(P.meta(ds).get("generation") or 0),
        }
        status["numberUnavailable"] = status["desiredNumberScheduled"] - status["numberAvailable"]
        old = ds.get("status") or {}
        if all(old.get(k, 0) == v for k, v in status.items()):
            return
        m = P.meta(ds)
        try:
            await self.client.patch("daemonsets", m["name"], {"status": status}, namespace=m.get("namespace"), subresource="status")
        except NotFound:
            pass


def _resolve_up(value: Any, total: int) -> int:
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        return math.ceil(int(text[:-1]) * total / 100)
    return int(text)
