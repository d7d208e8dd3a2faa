"""Node lifecycle: silent nodes become NotReady, get NoExecute taints, and lose their pods — carefully.

Health comes from heartbeats: each node renews a Lease in ``kube-node-lease``. The controller
records, on ITS OWN monotonic clock, when it last saw a node's lease (or Ready heartbeat) change;
it never compares another machine's timestamps with its clock. A node silent for longer than
``grace_period`` (default 50 s):
- gets ``Ready`` (and the other kubelet conditions) = ``Unknown``, reason ``NodeStatusUnknown``;
- its pods get ``Ready=False`` (so Endpoints drop them at once);
- gets the taints ``node.kubernetes.io/unreachable`` ``NoSchedule`` and ``NoExecute``
  (a node that itself reports ``Ready=False`` gets ``node.kubernetes.io/not-ready`` instead).
Pods on a node with a ``NoExecute`` taint are deleted unless they tolerate it: at once without a
matching toleration, after ``tolerationSeconds`` with one, never with one that has no seconds.
The API server's admission adds the default tolerations (not-ready and unreachable,
``NoExecute``, 300 s) to every pod, as Kubernetes' DefaultTolerationSeconds plugin does; this
controller only reads them. A node whose lease is fresh again loses both taints.

THE GUARD (what keeps a control-plane hiccup from wiping the cluster):
1. Observation clocks start when this controller starts (each leadership term builds a new one),
   and are RESET — every node counted as just heard from, every toleration countdown restarted —
   whenever the controller may have been blind: its own monitor loop ran late by more than
   ``stall_tolerance`` (event loop or process stalled), or the API server did not answer the
   per-tick ``/readyz`` probe (then the reset happens when it answers again).
2. Nothing is evicted until heartbeats have been flowing — at least one lease renewal observed
   after the last reset — for a full ``grace_period``, and nodes are marked unknown only once
   some heartbeat has been observed since the reset (a watch that is still reconnecting sees
   silence everywhere; that is our blindness, not their death).
3. Eviction countdowns run from when THIS controller first saw the taint, not from the taint's
   ``timeAdded`` (a taint written before a long outage does not fire the moment we come back).
4. Full disruption: when at least ``large_cluster_size_threshold`` (3) nodes exist and more than
   ``unhealthy_zone_threshold`` (55%) of them are unhealthy at once — or when no node is healthy
   at all — the cause is far more likely the network or the control plane than the nodes: no
   NoExecute taints are added, existing ones are removed, and nothing is evicted (Kubernetes'
   FullDisruption / unhealthyZoneThreshold behaviour).
So a control-plane restart after a long downtime evicts nothing: the nodes renew within the
grace period of the restarted controller's fresh clocks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import ApiConnectionError, ApiError, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
OUR_TAINTS = (UNREACHABLE, NOT_READY)
KUBELET_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


class NodeLifecycleController(Controller):
    name = "node-lifecycle-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, monitor_period: float = 5.0, grace_period: float = 50.0,
                 unhealthy_zone_threshold: float = 0.55, large_cluster_size_threshold: int = 3,
                 stall_tolerance: float | None = None, workers: int = 4,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(client, workers=workers)
        self.monitor_period = monitor_period
        self.grace_period = grace_period
        self.threshold = unhealthy_zone_threshold
        self.large_cluster = large_cluster_size_threshold
        self.stall_tolerance = stall_tolerance if stall_tolerance is not None else max(monitor_period, grace_period / 4)
        self.clock = clock
        self.monotonic = monotonic
        self.nodes = informers.get("nodes")
        self.leases = informers.get("leases", namespace=LEASE_NAMESPACE)
        self.pods = informers.get("pods")
        self.events = EventRecorder(client, component=self.name)
        self.reset_at = monotonic()
        self.heartbeat_since: float | None = None  # first heartbeat observed after the last reset
        self.heard: dict[str, tuple[Any, float]] = {}  # node → (last heartbeat value, when we saw it change)
        self.taint_seen: dict[tuple[str, str], float] = {}  # (node, taint key) → when we first saw the NoExecute taint
        self.health: dict[str, str] = {}
        self.full_disruption = False
        self.evictions = 0
        self.resets = 0
        self.leases.add_handler(on_add=self._lease_seen, on_update=lambda _o, n: self._lease_seen(n))
        self.nodes.add_handler(on_add=self._node_seen, on_update=lambda _o, n: self._node_seen(n),
                               on_delete=lambda n: self._forget(P.meta(n).get("name")))

    # ----------------------------------------------------------------- observation

    def _observe(self, node: str, value: Any) -> None:
        now = self.monotonic()
        old = self.heard.get(node)
        if old is None or old[0] != value:
            if old is not None and self.heartbeat_since is None:
                self.heartbeat_since = now  # a real change: heartbeats are reaching us
            self.heard[node] = (value, now)

    def _lease_seen(self, lease: Obj) -> None:
        self._observe(P.meta(lease).get("name"), ("lease", (lease.get("spec") or {}).get("renewTime")))

    def _node_seen(self, node: Obj) -> None:
        name = P.meta(node).get("name")
        if self.leases.get(f"{LEASE_NAMESPACE}/{name}") is None:
            ready = P.condition(node, "Ready") or {}
            self._observe(name, ("node", ready.get("lastHeartbeatTime")))
        else:
            self.heard.setdefault(name, (None, self.monotonic()))

    def _forget(self, name: str | None) -> None:
        self.heard.pop(name or "", None)
        self.health.pop(name or "", None)
        for key in [k for k in self.taint_seen if k[0] == name]:
            del self.taint_seen[key]

    def reset(self, why: str) -> None:
        """Forget what silence we measured: every node counts as just heard from (guard rule 1)."""
        now = self.monotonic()
        self.reset_at = now
        self.heartbeat_since = None
        self.heard = {name: (value, now) for name, (value, _) in self.heard.items()}
        self.taint_seen.clear()
        self.resets += 1
        log.warning("node lifecycle: observation clocks reset (%s); no eviction for at least %.0fs", why, self.grace_period)

    def silent_for(self, node: str) -> float:
        now = self.monotonic()
        _, at = self.heard.get(node, (None, self.reset_at))
        return now - max(at, self.reset_at)

    def evictions_allowed(self) -> bool:
        """Guard rules 2 and 4."""
        if self.full_disruption or self.heartbeat_since is None:
            return False
        return self.monotonic() - self.heartbeat_since >= self.grace_period

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        monitor = asyncio.create_task(self._monitor(), name=f"{self.name}:monitor")
        try:
            await super().run()
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    async def _monitor(self) -> None:
        await asyncio.gather(*(i.wait_for_sync() for i in (self.nodes, self.leases, self.pods)))
        for node in self.nodes.list():
            self._node_seen(node)
        for lease in self.leases.list():
            self.heard[P.meta(lease).get("name")] = (("lease", (lease.get("spec") or {}).get("renewTime")), self.monotonic())
        last = self.monotonic()
        api_down = False
        while True:
            await asyncio.sleep(self.monitor_period)
            now = self.monotonic()
            if now - last > self.monitor_period + self.stall_tolerance:
                self.reset(f"monitor loop ran {now - last - self.monitor_period:.1f}s late")
            last = now
            try:
                await self.client.request("GET", "/readyz", raw=True, timeout=max(1.0, self.monitor_period))
            except asyncio.CancelledError:
                raise
            except (ApiConnectionError, ApiError, OSError, asyncio.TimeoutError) as exc:
                if not api_down:
                    log.warning("node lifecycle: API server unreachable (%s); not judging nodes", exc)
                api_down = True
                continue
            if api_down:
                api_down = False
                self.reset("the API server was unreachable")
            last = self.monotonic()
            self.tick()

    def tick(self) -> None:
        """Judge every node, decide the disruption mode, enqueue nodes whose state needs writing."""
        names = [P.meta(n).get("name") for n in self.nodes.list()]
        health: dict[str, str] = {}
        judging = self.heartbeat_since is not None  # guard rule 2: blind until a heartbeat arrives
        for name in names:
            node = self.nodes.get(name)
            ready = P.condition(node or {}, "Ready") or {}
            if judging and self.silent_for(name) > self.grace_period:
                health[name] = "unknown"
            elif ready.get("status") == "False":
                health[name] = "notready"
            else:
                health[name] = "healthy"
        unhealthy = sum(1 for h in health.values() if h != "healthy")
        full = bool(names) and (unhealthy == len(names) or (len(names) >= self.large_cluster and unhealthy / len(names) > self.threshold))
        if full != self.full_disruption:
            log.warning("node lifecycle: %s (%d of %d nodes unhealthy)", "full disruption: evictions stopped" if full else "disruption over",
                        unhealthy, len(names))
        self.full_disruption = full
        self.health = health
        for name in names:
            self.queue.add(name)

    # ----------------------------------------------------------------- per node

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        state = self.health.get(key)
        if node is None or state is None:
            return
        if state == "unknown":
            await self.mark_unknown(node)
        await self.sync_taints(node, state)
        node = self.nodes.get(key) or node
        if state == "unknown":
            await self.mark_pods_not_ready(key)
        if self.evictions_allowed():
            await self.evict(node)

    async def mark_unknown(self, node: Obj) -> None:
        conditions = (node.get("status") or {}).get("conditions") or []
        if all(c.get("status") == "Unknown" for c in conditions if c.get("type") in KUBELET_CONDITIONS):
            return
        stamp = P.format_time(self.clock())
        new = []
        for c in conditions:
            if c.get("type") in KUBELET_CONDITIONS and c.get("status") != "Unknown":
                c = dict(c, status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.", lastTransitionTime=stamp)
            new.append(c)
        name = P.meta(node)["name"]
        await self.client.patch("nodes", name, {"metadata": {"resourceVersion": P.meta(node).get("resourceVersion")}, "status": {"conditions": new}},
                                subresource="status")
        await self.events.record(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")

    def wanted_taints(self, state: str) -> list[dict[str, Any]]:
        key = {"unknown": UNREACHABLE, "notready": NOT_READY}.get(state)
        if key is None:
            return []
        wanted = [{"key": key, "effect": "NoSchedule"}]
        if not self.full_disruption:
            wanted.append({"key": key, "effect": "NoExecute"})
        return wanted

    async def sync_taints(self, node: Obj, state: str) -> None:
        taints = list((node.get("spec") or {}).get("taints") or [])
        wanted = self.wanted_taints(state)
        keep = [t for t in taints if t.get("key") not in OUR_TAINTS
                or any(t.get("key") == w["key"] and t.get("effect") == w["effect"] for w in wanted)]
        have = {(t.get("key"), t.get("effect")) for t in keep}
        stamp = P.format_time(self.clock())
        added = [dict(w, timeAdded=stamp) for w in wanted if (w["key"], w["effect"]) not in have]
        if not added and len(keep) == len(taints):
            return
        name = P.meta(node)["name"]
        patch = {"metadata": {"resourceVersion": P.meta(node).get("resourceVersion")}, "spec": {"taints": keep + added or None}}
        await self.client.patch("nodes", name, patch)
        if added:
            log.info("node %s: tainted %s", name, ", ".join(f"{t['key']}:{t['effect']}" for t in added))

    async def mark_pods_not_ready(self, node: str) -> None:
        stamp = P.format_time(self.clock())
        for pod in self.pods.by_index("node", node):
            if not P.is_ready(pod) or P.is_terminal(pod):
                continue
            conditions = [dict(c, status="False", lastTransitionTime=stamp) if c.get("type") == "Ready" else c
                          for c in (pod.get("status") or {}).get("conditions") or []]
            m = P.meta(pod)
            try:
                await self.client.patch("pods", m["name"], {"status": {"conditions": conditions}}, namespace=m.get("namespace"), subresource="status")
            except NotFound:
                pass

    async def evict(self, node: Obj) -> None:
        name = P.meta(node)["name"]
        now = self.monotonic()
        taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute"]
        for t in taints:
            self.taint_seen.setdefault((name, t.get("key")), now)
        for key in [k for k in self.taint_seen if k[0] == name and k[1] not in {t.get("key") for t in taints}]:
            del self.taint_seen[key]
        if not taints:
            return
        next_check: float | None = None
        for pod in self.pods.by_index("node", name):
            if P.is_terminating(pod) or P.is_terminal(pod):
                continue
            due = self.eviction_due(name, pod, taints)
            if due is None:
                continue
            if due <= now:
                await self.delete_pod(pod, name)
            else:
                next_check = due - now if next_check is None else min(next_check, due - now)
        if next_check is not None:
            self.queue.add_after(name, next_check + 0.01)

    def eviction_due(self, node: str, pod: Obj, taints: list[dict[str, Any]]) -> float | None:
        """When (our monotonic clock) the pod must go, or None if it tolerates every taint forever."""
        due: float | None = None
        for taint in taints:
            seen = self.taint_seen.get((node, taint.get("key")), self.monotonic())
            tol = P.tolerates((pod.get("spec") or {}).get("tolerations"), taint)
            if tol is None:
                return seen  # untolerated: now
            seconds = tol.get("tolerationSeconds")
            if seconds is None:
                continue
            at = seen + max(0, int(seconds))
            due = at if due is None else min(due, at)
        return due

    async def delete_pod(self, pod: Obj, node: str) -> None:
        m = P.meta(pod)
        try:
            await self.client.delete("pods", m["name"], namespace=m.get("namespace"), preconditions={"uid": m.get("uid")})
        except (NotFound, Conflict):
            return
        self.evictions += 1
        log.info("node lifecycle: evicted %s from %s", object_key(pod), node)
        await self.events.record(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {object_key(pod)}")
