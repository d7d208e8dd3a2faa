"""The Deployment controller: roll a template out through ReplicaSets, as Kubernetes does.

Each distinct pod template gets one ReplicaSet ``<deployment>-<pod-template-hash>``; the hash is
FNV-32a over the canonical JSON of the template (plus ``status.collisionCount``), rendered with
Kubernetes' safe alphabet — stable for the same template, so ``kubectl rollout undo`` (which
patches the deployment's template back to an old ReplicaSet's, client-side) finds that old
ReplicaSet again and scales it up instead of creating a new one. ReplicaSets carry the revision
annotation ``deployment.kubernetes.io/revision``; the newest template gets max(revision) + 1.

RollingUpdate (Kubernetes' ``rolling.go``): scale the new RS up while total pods stay within
``replicas + maxSurge``; scale old RSs down while available pods stay at least
``replicas - maxUnavailable`` (surge rounds up, unavailable down; both 0 → unavailable 1).
Two deliberate departures make that invariant hold even on a stale cache: the pod count of an
RS is ``max(spec.replicas, live pods)`` and its available count is
``min(spec.replicas, available live pods)`` — read from pods, not from the RS's status that the
ReplicaSet controller may not have rewritten yet. Recreate: scale old RSs to 0, wait until none
of their pods is left, then scale the new one up.

Status: observedGeneration, replicas, updatedReplicas, readyReplicas, availableReplicas,
unavailableReplicas, collisionCount and conditions Available (MinimumReplicasAvailable /
MinimumReplicasUnavailable) and Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
DeploymentResumed) — what ``kubectl rollout status`` reads. ``spec.paused`` stops rollouts
(scaling still happens). Old ReplicaSets at 0 beyond ``revisionHistoryLimit`` are deleted.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import orjson

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound, TemporaryError
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
HASH_LABEL = "pod-template-hash"
#: annotations of the deployment that are not copied to its ReplicaSets (as Kubernetes' skip list)
_SKIP_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, "deployment.kubernetes.io/revision-history",
                     DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"}


# ------------------------------------------------------------------ pure helpers

def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """Kubernetes' ``ComputeHash`` shape: fnv32a, then ``SafeEncodeString`` of its decimal digits."""
    data = orjson.dumps(_without_hash(template), option=orjson.OPT_SORT_KEYS)
    if collision_count:
        data += str(collision_count).encode()
    return "".join(P.NAME_ALPHABET[ord(c) % len(P.NAME_ALPHABET)] for c in str(fnv32a(data)))


def _drop_nulls(value: Any) -> Any:
    """JSON null and absent are the same to Go's structs (kubectl sends ``creationTimestamp: null``)."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _without_hash(template: Obj) -> Obj:
    t = _drop_nulls(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return t


def templates_equal(a: Obj, b: Obj) -> bool:
    return orjson.dumps(_without_hash(a), option=orjson.OPT_SORT_KEYS) == orjson.dumps(_without_hash(b), option=orjson.OPT_SORT_KEYS)


def resolve(value: Any, total: int, *, round_up: bool) -> int:
    """An int-or-percent against ``total`` (Kubernetes' ``GetScaledValueFromIntOrPercent``)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        pct = int(text[:-1])
        exact = pct * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(text)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` resolved against replicas (Kubernetes' ``ResolveFenceposts``)."""
    spec = deployment.get("spec") or {}
    replicas = int(spec.get("replicas") or 0)
    strategy = spec.get("strategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return 0, 0
    ru = strategy.get("rollingUpdate") or {}
    surge = resolve(ru.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = resolve(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def revision_of(rs: Obj) -> int:
    try:
        return int((P.meta(rs).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def replicas_of(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas") or 0)


class DeploymentController(Controller):
    name = "deployment-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 4,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, workers=workers)
        self.clock = clock
        self.deployments = informers.get("deployments")
        self.sets = informers.get("replicasets")
        self.pods = informers.get("pods")
        self.events = EventRecorder(client, component=self.name)
        self.watch(self.deployments)
        self.watch(self.sets, self._owner_key)
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n), on_delete=self._pod_changed)

    def _owner_key(self, rs: Obj) -> str | None:
        return P.controller_key(rs, "Deployment")

    def _pod_changed(self, pod: Obj) -> None:
        rs_key = P.controller_key(pod, "ReplicaSet")
        if rs_key is None:
            return
        rs = self.sets.get(rs_key)
        if rs is not None:
            key = self._owner_key(rs)
            if key:
                self.queue.add(key)

    # ----------------------------------------------------------------- reading the world

    def owned_sets(self, d: Obj) -> list[Obj]:
        return [rs for rs in self.sets.by_index("owner", P.meta(d).get("uid")) if P.meta(rs).get("namespace") == P.meta(d).get("namespace")]

    def live_pods(self, rs: Obj) -> list[Obj]:
        return [p for p in self.pods.by_index("owner", P.meta(rs).get("uid")) if P.is_active(p)]

    def pod_count(self, rs: Obj) -> int:
        """What this RS has or is about to have: never less than the pods still alive."""
        return max(replicas_of(rs), len(self.live_pods(rs)))

    def available(self, rs: Obj, min_ready: int) -> int:
        """Available pods this RS will keep: the RS controller may still delete surplus ones."""
        now = self.clock()
        return min(replicas_of(rs), sum(1 for p in self.live_pods(rs) if P.is_available(p, min_ready, now)))

    # ----------------------------------------------------------------- reconcile

    async def reconcile(self, key: str) -> None:
        d = self.deployments.get(key)
        if d is None or P.is_terminating(d):
            return
        spec = d.get("spec") or {}
        if not (spec.get("selector") or {}):
            return  # an empty selector matches everything: Kubernetes refuses to act on it
        sets = self.owned_sets(d)
        if spec.get("paused"):
            new = self.find_new(d, sets)
            await self.scale_when_paused(d, new, sets)
            await self.sync_status(d, new, [s for s in sets if s is not new], paused=True)
            return
        new, created = await self.new_replicaset(d, sets)
        sets = [s for s in self.owned_sets(d) if P.meta(s).get("uid") != P.meta(new).get("uid")] if new else sets
        olds = [s for s in sets if new is None or P.meta(s).get("uid") != P.meta(new).get("uid")]
        await self.sync_revision(d, new)
        strategy = ((spec.get("strategy") or {}).get("type")) or "RollingUpdate"
        if strategy == "Recreate":
            await self.rollout_recreate(d, new, olds)
        else:
            await self.rollout_rolling(d, new, olds)
        await self.sync_status(d, new, olds, created=created)

    async def sync_revision(self, d: Obj, new: Obj) -> None:
        """The deployment carries its new RS's revision (``kubectl rollout undo`` patches that annotation)."""
        revision = str(revision_of(new))
        dm = P.meta(d)
        if (dm.get("annotations") or {}).get(REVISION) != revision:
            await self.client.patch("deployments", dm["name"], {"metadata": {"annotations": {REVISION: revision}}}, namespace=dm.get("namespace"))

    def find_new(self, d: Obj, sets: list[Obj]) -> Obj | None:
        template = (d.get("spec") or {}).get("template") or {}
        matching = [rs for rs in sets if templates_equal((rs.get("spec") or {}).get("template") or {}, template)]
        if not matching:
            return None
        return min(matching, key=lambda rs: P.parse_time(P.meta(rs).get("creationTimestamp")) or 0.0)

    async def new_replicaset(self, d: Obj, sets: list[Obj]) -> tuple[Obj, bool]:
        """The RS of the current template, created (or its revision bumped) as needed."""
        dm = P.meta(d)
        max_old = max((revision_of(rs) for rs in sets), default=0)
        existing = self.find_new(d, sets)
        if existing is not None:
            olds_max = max((revision_of(rs) for rs in sets if rs is not existing), default=0)
            if revision_of(existing) <= olds_max or self._annotations_differ(d, existing):
                revision = olds_max + 1 if revision_of(existing) <= olds_max else revision_of(existing)
                patch = {"metadata": {"annotations": {**self._copied_annotations(d), REVISION: str(revision)}}}
                existing = await self.client.patch("replicasets", P.meta(existing)["name"], patch, namespace=dm.get("namespace"))
            return existing, False
        spec = d.get("spec") or {}
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        template = copy.deepcopy(spec.get("template") or {})
        h = template_hash(template, collisions)
        tmeta = template.setdefault("metadata", {})
        tmeta["labels"] = {**(tmeta.get("labels") or {}), HASH_LABEL: h}
        selector = copy.deepcopy(spec.get("selector") or {})
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), HASH_LABEL: h}
        replicas = 0
        if ((spec.get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate":
            replicas = self.new_rs_replicas(d, sets, None)
        surge, _ = surge_and_unavailable(d)
        rs = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{dm['name']}-{h}", "namespace": dm.get("namespace"), "labels": dict(tmeta["labels"]),
                         "annotations": {**self._copied_annotations(d), REVISION: str(max_old + 1),
                                         DESIRED_REPLICAS: str(spec.get("replicas", 1)),
                                         MAX_REPLICAS: str(int(spec.get("replicas", 1)) + surge)},
                         "ownerReferences": [P.owner_reference(d)]},
            "spec": {"replicas": replicas, "minReadySeconds": int(spec.get("minReadySeconds") or 0), "selector": selector, "template": template},
        }
        try:
            created = await self.client.create(rs)
        except AlreadyExists:
            other = await self.client.get("replicasets", rs["metadata"]["name"], namespace=dm.get("namespace"))
            if P.is_controlled_by(other, d) and templates_equal((other.get("spec") or {}).get("template") or {}, spec.get("template") or {}):
                return other, False  # our cache was behind: it is ours already
            # a true hash collision: a different template under this name; hash again with a new count
            await self.client.patch("deployments", dm["name"], {"status": {"collisionCount": collisions + 1}},
                                    namespace=dm.get("namespace"), subresource="status")
            raise TemporaryError(f"pod-template-hash collision for {object_key(d)}", delay=0)
        await self.events.record(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {rs['metadata']['name']} from 0 to {replicas}")
        return created, True

    def _copied_annotations(self, d: Obj) -> dict[str, str]:
        return {k: v for k, v in (P.meta(d).get("annotations") or {}).items() if k not in _SKIP_ANNOTATIONS}

    def _annotations_differ(self, d: Obj, rs: Obj) -> bool:
        mine = P.meta(rs).get("annotations") or {}
        return any(mine.get(k) != v for k, v in self._copied_annotations(d).items())

    # ----------------------------------------------------------------- strategies

    def new_rs_replicas(self, d: Obj, olds: list[Obj], new: Obj | None) -> int:
        """Kubernetes' ``NewRSNewReplicas`` for RollingUpdate, counting live pods too."""
        replicas = int((d.get("spec") or {}).get("replicas") or 0)
        surge, _ = surge_and_unavailable(d)
        new_replicas = replicas_of(new) if new is not None else 0
        current = sum(self.pod_count(rs) for rs in olds) + (self.pod_count(new) if new is not None else 0)
        max_total = replicas + surge
        if current >= max_total:
            return new_replicas
        up = min(max_total - current, replicas - new_replicas)
        return new_replicas + max(0, up)

    async def scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        if replicas_of(rs) == replicas:
            return rs
        spec = d.get("spec") or {}
        surge, _ = surge_and_unavailable(d)
        rm = P.meta(rs)
        # no resourceVersion precondition: only this controller writes an owned RS's spec.replicas, while
        # the ReplicaSet controller rewrites its status all the time — a precondition would turn every
        # status write into a Conflict and a backed-off requeue in the middle of a rollout
        patch = {"metadata": {"annotations": {DESIRED_REPLICAS: str(spec.get("replicas", 1)), MAX_REPLICAS: str(int(spec.get("replicas", 1)) + surge)}},
                 "spec": {"replicas": replicas}}
        updated = await self.client.patch("replicasets", rm["name"], patch, namespace=rm.get("namespace"))
        verb = "up" if replicas > replicas_of(rs) else "down"
        await self.events.record(d, "Normal", "ScalingReplicaSet", f"Scaled {verb} replica set {rm['name']} from {replicas_of(rs)} to {replicas}")
        self.sets.indexer.upsert(updated)  # our own write: later decisions in this pass must see it
        return updated

    async def rollout_rolling(self, d: Obj, new: Obj, olds: list[Obj]) -> None:
        replicas = int((d.get("spec") or {}).get("replicas") or 0)
        min_ready = int((d.get("spec") or {}).get("minReadySeconds") or 0)
        # 1. scale the new RS up (or down, when the deployment itself was scaled down)
        if replicas_of(new) > replicas:
            await self.scale(d, new, replicas)
            return
        if replicas_of(new) < replicas:
            target = self.new_rs_replicas(d, olds, new)
            if target != replicas_of(new):
                await self.scale(d, new, target)
                return
        # 2. scale old RSs down within maxUnavailable
        active_olds = [rs for rs in olds if replicas_of(rs) > 0]
        if active_olds:
            if await self.scale_down_olds(d, new, active_olds, replicas, min_ready):
                return

    async def scale_down_olds(self, d: Obj, new: Obj, olds: list[Obj], replicas: int, min_ready: int) -> bool:
        _, max_unavailable = surge_and_unavailable(d)
        min_available = replicas - max_unavailable
        all_pods = sum(self.pod_count(rs) for rs in olds) + self.pod_count(new)
        new_unavailable = replicas_of(new) - self.available(new, min_ready)
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        olds = sorted(olds, key=lambda rs: P.parse_time(P.meta(rs).get("creationTimestamp")) or 0.0)
        changed = False
        # unhealthy old pods first: removing them costs no availability
        cleaned = 0
        for i, rs in enumerate(olds):
            if cleaned >= max_scaled_down:
                break
            unhealthy = replicas_of(rs) - self.available(rs, min_ready)
            if replicas_of(rs) == 0 or unhealthy <= 0:
                continue
            down = min(max_scaled_down - cleaned, unhealthy)
            olds[i] = await self.scale(d, rs, replicas_of(rs) - down)
            cleaned += down
            changed = True
        available = sum(self.available(rs, min_ready) for rs in olds) + self.available(new, min_ready)
        if available <= min_available:
            return changed
        total = available - min_available
        scaled = 0
        for rs in olds:
            if scaled >= total:
                break
            if replicas_of(rs) == 0:
                continue
            # only available pods of this RS may go without breaking the floor
            down = min(replicas_of(rs), total - scaled)
            await self.scale(d, rs, replicas_of(rs) - down)
            scaled += down
            changed = True
        return changed

    async def rollout_recreate(self, d: Obj, new: Obj, olds: list[Obj]) -> None:
        replicas = int((d.get("spec") or {}).get("replicas") or 0)
        for rs in olds:
            if replicas_of(rs) > 0:
                await self.scale(d, rs, 0)
        # wait until every old pod is gone, terminating ones included: Recreate promises no overlap
        if any(p for rs in olds for p in self.pods.by_index("owner", P.meta(rs).get("uid")) if not P.is_terminal(p)):
            return
        if replicas_of(new) != replicas:
            await self.scale(d, new, replicas)

    async def scale_when_paused(self, d: Obj, new: Obj | None, sets: list[Obj]) -> None:
        replicas = int((d.get("spec") or {}).get("replicas") or 0)
        active = [rs for rs in sets if replicas_of(rs) > 0]
        target = new if new is not None else (active[0] if len(active) == 1 else None)
        if target is not None and len([rs for rs in active if rs is not target]) == 0 and replicas_of(target) != replicas:
            await self.scale(d, target, replicas)

    # ----------------------------------------------------------------- cleanup and status

    async def cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        idle = [rs for rs in olds if replicas_of(rs) == 0 and not self.pods.by_index("owner", P.meta(rs).get("uid")) and not P.is_terminating(rs)]
        idle.sort(key=revision_of)
        for rs in idle[:max(0, len(idle) - int(limit))]:
            try:
                await self.client.delete("replicasets", P.meta(rs)["name"], namespace=P.meta(rs).get("namespace"),
                                         preconditions={"uid": P.meta(rs).get("uid")})
            except (NotFound, Conflict):
                pass

    async def sync_status(self, d: Obj, new: Obj | None, olds: list[Obj], *, paused: bool = False, created: bool = False) -> None:
        spec, old_status = d.get("spec") or {}, d.get("status") or {}
        replicas = int(spec.get("replicas") or 0)
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = self.clock()
        everything = ([new] if new is not None else []) + olds
        live = [p for rs in everything for p in self.live_pods(rs)]
        new_live = self.live_pods(new) if new is not None else []
        available = sum(1 for p in live if P.is_available(p, min_ready, now))
        status: dict[str, Any] = {
            "observedGeneration": int(P.meta(d).get("generation") or 0),
            "replicas": len(live),
            "updatedReplicas": len(new_live),
            "readyReplicas": sum(1 for p in live if P.is_ready(p)),
            "availableReplicas": available,
            "unavailableReplicas": max(0, replicas - available),
        }
        if old_status.get("collisionCount") is not None:
            status["collisionCount"] = old_status["collisionCount"]
        _, max_unavailable = surge_and_unavailable(d)
        stamp = P.format_time(now)
        conditions = list(old_status.get("conditions") or [])
        if available >= replicas - max_unavailable:
            avail = {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."}
        else:
            avail = {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "Deployment does not have minimum availability."}
        conditions = _set(conditions, avail, stamp)
        conditions = self._progressing(d, new, status, old_status, conditions, stamp, now, paused=paused, created=created)
        status["conditions"] = conditions
        complete = (status["updatedReplicas"] == replicas and status["replicas"] == replicas and available == replicas)
        if complete and not paused:
            await self.cleanup(d, olds)
        if _status_changed(old_status, status):
            dm = P.meta(d)
            try:
                await self.client.patch("deployments", dm["name"], {"status": status}, namespace=dm.get("namespace"), subresource="status")
            except NotFound:
                return
        # come back when pods become available (minReadySeconds) or the deadline passes
        waits = [w for p in live if (w := P.seconds_until_available(p, min_ready, now)) is not None]
        deadline = spec.get("progressDeadlineSeconds")
        if not complete and not paused and deadline is not None:
            prog = P.condition({"status": status}, "Progressing")
            if prog is not None and prog.get("reason") != "ProgressDeadlineExceeded":
                last = P.parse_time(prog.get("lastUpdateTime")) or now
                waits.append(max(0.05, last + int(deadline) - now))
        if waits:
            self.queue.add_after(object_key(d), min(waits) + 0.05)

    def _progressing(self, d: Obj, new: Obj | None, status: dict[str, Any], old_status: dict[str, Any], conditions: list[dict[str, Any]],
                     stamp: str, now: float, *, paused: bool, created: bool) -> list[dict[str, Any]]:
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas") or 0)
        current = P.condition({"status": {"conditions": conditions}}, "Progressing")
        rs_name = P.meta(new).get("name") if new is not None else ""
        if paused:
            if current is None or current.get("reason") != "DeploymentPaused":
                return _set(conditions, {"type": "Progressing", "status": "Unknown", "reason": "DeploymentPaused",
                                         "message": "Deployment is paused", "lastUpdateTime": stamp}, stamp)
            return conditions
        if current is not None and current.get("reason") == "DeploymentPaused":
            conditions = _set(conditions, {"type": "Progressing", "status": "Unknown", "reason": "DeploymentResumed",
                                           "message": "Deployment is resumed", "lastUpdateTime": stamp}, stamp)
            current = P.condition({"status": {"conditions": conditions}}, "Progressing")
        if spec.get("progressDeadlineSeconds") is None:
            return conditions
        complete = (status["updatedReplicas"] == replicas and status["replicas"] == replicas and status["availableReplicas"] == replicas)
        if complete:
            if current is None or current.get("reason") != "NewReplicaSetAvailable":
                return _set(conditions, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                                         "message": f'ReplicaSet "{rs_name}" has successfully progressed.', "lastUpdateTime": stamp}, stamp)
            return conditions
        if created:
            return _set(conditions, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetCreated",
                                     "message": f'Created new replica set "{rs_name}"', "lastUpdateTime": stamp}, stamp)
        progressed = (status["updatedReplicas"] > int(old_status.get("updatedReplicas") or 0)
                      or status["readyReplicas"] > int(old_status.get("readyReplicas") or 0)
                      or status["availableReplicas"] > int(old_status.get("availableReplicas") or 0)
                      or status["replicas"] - status["updatedReplicas"] < int(old_status.get("replicas") or 0) - int(old_status.get("updatedReplicas") or 0))
        if progressed or current is None or current.get("reason") in ("NewReplicaSetAvailable", "DeploymentResumed"):
            if current is None and not progressed:
                reason, message = "FoundNewReplicaSet", f'Found new replica set "{rs_name}"'
            else:
                reason, message = "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            return _set(conditions, {"type": "Progressing", "status": "True", "reason": reason, "message": message}, stamp, refresh=progressed)
        last = P.parse_time(current.get("lastUpdateTime")) or now
        if current.get("reason") != "ProgressDeadlineExceeded" and last + int(spec["progressDeadlineSeconds"]) <= now:
            return _set(conditions, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                     "message": f'ReplicaSet "{rs_name}" has timed out progressing.', "lastUpdateTime": stamp}, stamp)
        return conditions


def _set(conditions: list[dict[str, Any]], new: dict[str, Any], stamp: str, *, refresh: bool = False) -> list[dict[str, Any]]:
    """Set a condition; an unchanged one keeps its times unless ``refresh`` (progress was made)."""
    new = dict(new)
    for cond in conditions:
        if cond.get("type") == new["type"] and not refresh and all(cond.get(k) == new.get(k) for k in ("status", "reason", "message")):
            return conditions
    new["lastUpdateTime"] = stamp
    return P.set_condition(conditions, new, stamp)


def _status_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    return any(old.get(k) != v for k, v in new.items())
