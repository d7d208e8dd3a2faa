"""``HollowCluster``: N simulated nodes in one process, cheap enough for 1,000 of them.

What a real node agent does, minus running anything:
- registers a ``Node`` (capacity/allocatable, Ready condition, fake InternalIP) per node;
- heartbeats: renews one ``Lease`` per node in ``kube-node-lease``. Renewals are *batched*: one
  task keeps a heap of due times, spread evenly over ``renew_interval`` with jitter, and renews
  what is due through a concurrency-limited pool — never a task or timer per node;
- watches pods with ONE shared informer (not one watch per node) and, for pods bound to its
  nodes, reports them ``Running`` after ``ready_delay`` (phase, conditions, containerStatuses,
  podIP from the node's ``spec.podCIDR`` or a fake 10.244.x address). Pod status writes are
  *paced and coalesced*: due pods join one FIFO of keys (a key already waiting is not queued
  twice, and the write reads the pod's latest state when its turn comes) that ``status_writers``
  tasks drain — so a burst of 10,000 bindings becomes one status write per pod at the pace the
  API server absorbs, never 10,000 concurrent tasks, and lease renewals keep their own slots
  (``write_concurrency``) so heartbeats are not starved behind pod statuses;
- finishes pods marked for deletion (``deletionTimestamp``) by deleting them with
  ``gracePeriodSeconds=0``, as a kubelet does once containers have stopped.

Test hooks: ``stop_node``/``start_node`` silence or revive a node (no lease renewals, no pod
handling) to drive node-lifecycle tests; pod annotations ``sim.clusterctl.io/complete-after``
(seconds) and ``sim.clusterctl.io/exit-code`` make a pod finish (Succeeded / Failed) so Job
controllers can be tested; ``sim.clusterctl.io/never-ready: "true"`` keeps it Running but not Ready.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
import ipaddress
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from clusterctl.client.errors import AlreadyExists, ApiConnectionError, ApiError, Conflict, NotFound
from clusterctl.client.informer import Informer, index_pods_by_node
from clusterctl.client.rest import ApiClient, Obj, object_key
from clusterctl.client.wakeup import wait_event

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
ANNOTATION_COMPLETE_AFTER = "sim.clusterctl.io/complete-after"
ANNOTATION_EXIT_CODE = "sim.clusterctl.io/exit-code"
ANNOTATION_NEVER_READY = "sim.clusterctl.io/never-ready"


@dataclass
class HollowConfig:
    count: int
    prefix: str = "hollow-"
    cpu: str = "4"
    memory: str = "8Gi"
    pods: int = 110
    ready_delay: float = 0.0
    lease_duration: int = 40
    renew_interval: float = 10.0
    renew_jitter: float = 0.1
    status_interval: float = 300.0
    write_concurrency: int = 32
    #: pod status writes in flight (a coalescing queue, apart from the lease renewals' slots)
    status_writers: int = 8
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)
    first_index: int = 0

    def node_names(self) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(self.first_index, self.first_index + self.count)]


def _now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def fake_pod_cidr(node_index: int) -> ipaddress.IPv4Network:
    """A /24 per hollow node when no IPAM set ``spec.podCIDR``: 10.244.0.0/24, 10.244.1.0/24, ...
    up to 10.255.255.0/24 (3,072 nodes), then on from 10.128.0.0/24 (to 10.239.255.0/24: 31,744
    nodes in all) — always inside 10/8, and clear of the nodes' own 10.240.x InternalIPs."""
    block = 244 * 256 + node_index if node_index < 12 * 256 else 128 * 256 + node_index - 12 * 256
    if block >= 240 * 256 and node_index >= 12 * 256:
        raise ValueError(f"hollow node #{node_index}: no fake pod CIDR left (at most {12 * 256 + 112 * 256} nodes)")
    return ipaddress.ip_network(f"10.{block // 256}.{block % 256}.0/24")


class PodAddresses:
    """Hands out pod IPs per node: from ``spec.podCIDR`` when IPAM set one, else a fake /24."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self._by_pod: dict[str, str] = {}

    def ip_for(self, pod_key: str, node: str, node_index: int, pod_cidr: str | None) -> str:
        ip = self._by_pod.get(pod_key)
        if ip is not None:
            return ip
        net = ipaddress.ip_network(pod_cidr, strict=False) if pod_cidr else fake_pod_cidr(node_index)
        n = self._next.get(node, 2)
        self._next[node] = n + 1 if n + 1 < net.num_addresses - 1 else 2
        ip = str(net.network_address + n)
        self._by_pod[pod_key] = ip
        return ip

    def release(self, pod_key: str) -> None:
        self._by_pod.pop(pod_key, None)


class HollowCluster:
    """See the module docstring. ``await run()`` until cancelled; ``await started()`` after registration."""

    def __init__(self, client: ApiClient, config: HollowConfig, *, clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self.names = config.node_names()
        self._index = {name: i + config.first_index for i, name in enumerate(self.names)}
        self._stopped: set[str] = set()
        self._nodes: dict[str, Obj] = {}
        self._sem = asyncio.Semaphore(config.write_concurrency)
        self._status_queue: deque[str] = deque()
        self._status_due: dict[str, str] = {}  # pod key -> "run" | "finish", while queued
        self._status_wake = asyncio.Event()
        self.pods = Informer(client, "pods", indexers={"node": index_pods_by_node})
        self.addresses = PodAddresses()
        self._due: list[tuple[float, int, str, str]] = []  # (when, seq, action, key)
        self._seq = 0
        self._wake = asyncio.Event()
        self._reported: dict[str, str] = {}  # pod key -> uid we reported Running/finished for
        self._deleting: set[str] = set()
        self._registered = asyncio.Event()
        self.stats = {"lease_renewals": 0, "pod_status_writes": 0, "pod_status_coalesced": 0, "pod_deletes": 0, "errors": 0}
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n), on_delete=self._pod_deleted)

    # ----------------------------------------------------------------- test hooks

    def stop_node(self, name: str) -> None:
        """The node goes silent: no lease renewals, no pod status (as if its machine died)."""
        self._stopped.add(name)

    def start_node(self, name: str) -> None:
        self._stopped.discard(name)
        self._schedule(0, "lease", name)
        for pod in self.pods.by_index("node", name):
            self._pod_changed(pod)

    async def started(self) -> None:
        await self._registered.wait()
        await self.pods.wait_for_sync()

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        informer = asyncio.create_task(self.pods.run(), name="sim:pods")
        writers = [asyncio.create_task(self._status_writer(), name=f"sim:status:{i}") for i in range(max(1, self.config.status_writers))]
        try:
            await self.register()
            now = self._clock()
            interval = self.config.renew_interval
            for i, name in enumerate(self.names):
                # spread the first renewals evenly over one interval: no thundering herd
                self._schedule_at(now + interval * i / max(1, len(self.names)), "lease", name)
                self._schedule_at(now + self.config.status_interval * (1 + i / max(1, len(self.names))), "status", name)
            self._registered.set()
            await self._dispatch_loop()
        finally:
            for task in (informer, *writers):
                task.cancel()
            await asyncio.gather(informer, *writers, return_exceptions=True)

    async def register(self) -> None:
        """Create (or refresh) every Node and Lease, a bounded number at a time."""
        await self._ensure_namespace(LEASE_NAMESPACE)
        await asyncio.gather(*(self._register_node(name) for name in self.names))

    async def _ensure_namespace(self, name: str) -> None:
        try:
            await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except (AlreadyExists, Conflict):
            pass

    def node_object(self, name: str) -> Obj:
        cfg = self.config
        idx = self._index[name]
        resources = {"cpu": cfg.cpu, "memory": cfg.memory, "pods": str(cfg.pods), "ephemeral-storage": "100Gi"}
        now = _now_rfc3339()
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                                  "node.clusterctl.io/hollow": "true", **cfg.labels},
                         "annotations": {"node.clusterctl.io/simulated": "true"}},
            "spec": {"taints": list(cfg.taints)} if cfg.taints else {},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow node is posting ready status",
                     "lastHeartbeatTime": now, "lastTransitionTime": now},
                    *({"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": "", "lastHeartbeatTime": now, "lastTransitionTime": now}
                      for t, r in (("MemoryPressure", "SufficientMemory"), ("DiskPressure", "NoDiskPressure"), ("PIDPressure", "SufficientPID"))),
                ],
                "addresses": [{"type": "InternalIP", "address": str(ipaddress.ip_address("10.240.0.0") + idx + 1)},
                              {"type": "Hostname", "address": name}],
                "nodeInfo": {"kubeletVersion": "v1.32.0-hollow", "containerRuntimeVersion": "hollow://0.1", "operatingSystem": "linux",
                             "architecture": "amd64", "osImage": "hollow", "kernelVersion": "0", "machineID": name, "systemUUID": name,
                             "bootID": name, "kubeProxyVersion": "v1.32.0-hollow"},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            },
        }

    async def _register_node(self, name: str) -> None:
        body = self.node_object(name)
        async with self._sem:
            try:
                node = await self.client.create(body)
            except (AlreadyExists, Conflict):
                node = await self.client.get("nodes", name)
            if not ((node.get("status") or {}).get("conditions")) or node["status"].get("allocatable") != body["status"]["allocatable"] \
                    or any(c.get("type") == "Ready" and c.get("status") != "True" for c in node["status"].get("conditions") or []):
                node = await self.client.update_status(dict(node, status=body["status"]))
            self._nodes[name] = node
        await self._renew_lease(name)  # outside the slot: it takes its own

    def _schedule_at(self, when: float, action: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (when, self._seq, action, key))
        self._wake.set()

    def _schedule(self, delay: float, action: str, key: str) -> None:
        self._schedule_at(self._clock() + delay, action, key)

    async def _dispatch_loop(self) -> None:
        """One loop for every timed action of every node (lease renewals, status, pod transitions)."""
        running: set[asyncio.Task[Any]] = set()
        try:
            while True:
                now = self._clock()
                while self._due and self._due[0][0] <= now:
                    _, _, action, key = heapq.heappop(self._due)
                    task = asyncio.create_task(self._act(action, key))
                    running.add(task)
                    task.add_done_callback(running.discard)
                self._wake.clear()
                timeout = max(0.0, self._due[0][0] - self._clock()) if self._due else None
                await wait_event(self._wake, timeout)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _act(self, action: str, key: str) -> None:
        try:
            if action == "lease":
                if key in self._stopped:
                    return
                await self._renew_lease(key)
                jitter = self.config.renew_interval * self.config.renew_jitter * self._rng.random()
                self._schedule(self.config.renew_interval + jitter, "lease", key)
            elif action == "status":
                if key not in self._stopped:
                    await self._post_node_status(key)
                self._schedule(self.config.status_interval, "status", key)
            elif action in ("run", "finish"):
                self._queue_status(action, key)
        except asyncio.CancelledError:
            raise
        except (ApiError, ApiConnectionError) as exc:
            self.stats["errors"] += 1
            log.warning("hollow nodes: %s %s failed: %s", action, key, exc)
            if action in ("lease", "status"):
                self._schedule(1.0, action, key)
        except Exception:
            self.stats["errors"] += 1
            log.exception("hollow nodes: %s %s crashed", action, key)

    # ----------------------------------------------------------------- paced pod status writes

    def _queue_status(self, action: str, key: str) -> None:
        if key in self._status_due:
            self.stats["pod_status_coalesced"] += 1
            if action == "finish":  # a later transition supersedes the waiting one
                self._status_due[key] = action
            return
        self._status_due[key] = action
        self._status_queue.append(key)
        self._status_wake.set()

    async def _status_writer(self) -> None:
        """One of ``status_writers`` tasks draining the FIFO of pods whose status is due."""
        while True:
            while not self._status_queue:
                self._status_wake.clear()
                await wait_event(self._status_wake, None)
            key = self._status_queue.popleft()
            action = self._status_due.pop(key, None)
            try:
                if action == "run":
                    await self._report_running(key)
                elif action == "finish":
                    await self._report_finished(key)
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError) as exc:
                self.stats["errors"] += 1
                log.warning("hollow nodes: %s %s failed: %s", action, key, exc)
            except Exception:
                self.stats["errors"] += 1
                log.exception("hollow nodes: %s %s crashed", action, key)

    # ----------------------------------------------------------------- heartbeats

    async def _renew_lease(self, name: str) -> None:
        async with self._sem:
            try:
                await self.client.patch("leases", name, {"spec": {"holderIdentity": name, "leaseDurationSeconds": self.config.lease_duration,
                                                                   "renewTime": _micro_time()}}, namespace=LEASE_NAMESPACE)
            except NotFound:
                node = self._nodes.get(name) or {}
                owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": node["metadata"]["uid"]}] if (node.get("metadata") or {}).get("uid") else []
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": name, "namespace": LEASE_NAMESPACE, **({"ownerReferences": owner} if owner else {})},
                         "spec": {"holderIdentity": name, "leaseDurationSeconds": self.config.lease_duration, "renewTime": _micro_time()}}
                try:
                    await self.client.create(lease)
                except AlreadyExists:
                    pass
            self.stats["lease_renewals"] += 1

    async def _post_node_status(self, name: str) -> None:
        now = _now_rfc3339()
        async with self._sem:
            node = await self.client.get("nodes", name)
            status = dict(node.get("status") or {})
            conditions = []
            for cond in status.get("conditions") or []:
                cond = dict(cond, lastHeartbeatTime=now)
                if cond.get("type") == "Ready" and cond.get("status") != "True":
                    cond.update(status="True", reason="KubeletReady", lastTransitionTime=now)
                conditions.append(cond)
            status["conditions"] = conditions
            try:
                self._nodes[name] = await self.client.update_status(dict(node, status=status))
            except Conflict:
                self._schedule(0.5, "status", name)

    # ----------------------------------------------------------------- pods

    def _ours(self, pod: Obj) -> str | None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in self._index and node not in self._stopped:
            return node
        return None

    def _pod_changed(self, pod: Obj) -> None:
        node = self._ours(pod)
        if node is None:
            return
        key = object_key(pod)
        uid = (pod.get("metadata") or {}).get("uid") or ""
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
            if key not in self._deleting:
                self._deleting.add(key)
                self._spawn(self._delete_pod(pod))
            return
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") or self._reported.get(key) == uid:
            return
        self._reported[key] = uid
        if status.get("phase") == "Running" and status.get("podIP"):
            return  # reported by an earlier run of the simulator
        if self.config.ready_delay > 0:
            self._schedule(self.config.ready_delay, "run", key)
        else:  # due now: straight to the status writers, no timer and no task per pod
            self._queue_status("run", key)

    def _pod_deleted(self, pod: Obj) -> None:
        key = object_key(pod)
        self._reported.pop(key, None)
        self._deleting.discard(key)
        self.addresses.release(key)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    def pod_running_status(self, pod: Obj) -> Obj:
        """The status a kubelet would report for a pod whose containers all started."""
        node = pod["spec"]["nodeName"]
        key = object_key(pod)
        now = _now_rfc3339()
        meta = pod.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        ready = "False" if annotations.get(ANNOTATION_NEVER_READY) == "true" else "True"
        pod_cidr = ((self._nodes.get(node) or {}).get("spec") or {}).get("podCIDR")
        host_network = bool(pod["spec"].get("hostNetwork"))
        host_ip = next((a["address"] for a in ((self._nodes.get(node) or {}).get("status") or {}).get("addresses") or [] if a.get("type") == "InternalIP"), "")
        if not host_ip:
            host_ip = self.node_object(node)["status"]["addresses"][0]["address"]
        pod_ip = host_ip if host_network else self.addresses.ip_for(key, node, self._index[node], pod_cidr)
        uid = meta.get("uid", "")
        containers = [{
            "name": c["name"], "image": c.get("image", ""), "imageID": f"hollow://{c.get('image', '')}",
            "containerID": f"hollow://{uid}/{c['name']}", "ready": ready == "True", "started": True, "restartCount": 0,
            "state": {"running": {"startedAt": now}},
        } for c in pod["spec"].get("containers") or []]
        init = [{
            "name": c["name"], "image": c.get("image", ""), "imageID": f"hollow://{c.get('image', '')}",
            "containerID": f"hollow://{uid}/{c['name']}", "ready": True, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
        } for c in pod["spec"].get("initContainers") or []]
        status: Obj = {
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": ready, "lastTransitionTime": now},
                {"type": "ContainersReady", "status": ready, "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
            "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
            "startTime": now, "containerStatuses": containers, "qosClass": (pod.get("status") or {}).get("qosClass") or "BestEffort",
        }
        if init:
            status["initContainerStatuses"] = init
        return status

    async def _report_running(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or self._ours(pod) is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        if self._reported.get(key) != (pod.get("metadata") or {}).get("uid"):
            return
        status = self.pod_running_status(pod)
        await self._write_pod_status(pod, status)
        complete_after = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_COMPLETE_AFTER)
        if complete_after is not None:
            self._schedule(float(complete_after), "finish", key)

    async def _report_finished(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or self._ours(pod) is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        code = int(((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_EXIT_CODE) or 0)
        now = _now_rfc3339()
        status = dict(pod.get("status") or {})
        status["phase"] = "Succeeded" if code == 0 else "Failed"
        reason = "Completed" if code == 0 else "Error"
        status["containerStatuses"] = [dict(cs, ready=False, started=False, state={"terminated": {"exitCode": code, "reason": reason, "finishedAt": now,
                                                                                                  "startedAt": ((cs.get("state") or {}).get("running") or {}).get("startedAt", now)}})
                                       for cs in status.get("containerStatuses") or []]
        status["conditions"] = [dict(c, status="False", reason="PodCompleted") if c.get("type") in ("Ready", "ContainersReady") else c
                                for c in status.get("conditions") or []]
        await self._write_pod_status(pod, status)

    async def _write_pod_status(self, pod: Obj, status: Obj) -> None:
        meta = pod["metadata"]
        try:  # the status writers bound these; the lease slots (``_sem``) stay free for heartbeats
            await self.client.patch("pods", meta["name"], {"status": status}, namespace=meta.get("namespace"), subresource="status")
            self.stats["pod_status_writes"] += 1
        except NotFound:
            return

    async def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        key = object_key(pod)
        try:
            async with self._sem:
                await self.client.request("DELETE", f"/api/v1/namespaces/{meta.get('namespace')}/pods/{meta['name']}",
                                          body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                                "preconditions": {"uid": meta.get("uid")}})
                self.stats["pod_deletes"] += 1
        except (NotFound, Conflict):
            pass
        except (ApiError, ApiConnectionError) as exc:
            self.stats["errors"] += 1
            self._deleting.discard(key)
            log.warning("hollow nodes: deleting %s failed: %s", key, exc)

    async def delete_nodes(self) -> None:
        """Remove every Node and Lease this cluster registered (``--cleanup`` on exit)."""
        async def one(name: str) -> None:
            async with self._sem:
                for resource, ns in (("nodes", None), ("leases", LEASE_NAMESPACE)):
                    try:
                        await self.client.delete(resource, name, namespace=ns)
                    except (NotFound, ApiError, ApiConnectionError):
                        pass
        await asyncio.gather(*(one(n) for n in self.names))
