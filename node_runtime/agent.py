"""The node agent (kubelet-like): one per worker, everything it owns named by its node.

``Agent.run()`` registers the Node (capacity/allocatable from psutil and cgroups, addresses,
nodeInfo, labels, taints, the agent endpoint's port in ``daemonEndpoints`` and the SHA-256 of the
endpoint's certificate in ``clusterctl.io/serving-cert-sha256``, which the API server pins and
which every start and status post republish), keeps its Lease in
``kube-node-lease`` renewed, posts Node status (Ready, pressure conditions, the
``clusterctl.io/usage`` annotation), adopts the containers an earlier run left running, watches
the pods bound to it (``fieldSelector=spec.nodeName=<node>``) with one ``PodWorker`` each, and
serves logs/exec/stats (``server``). Stopping it (``stop_pods=False``) leaves pods running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import shutil
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psutil

import node_runtime
from clusterctl.client.errors import AlreadyExists, ApiConnectionError, ApiError, Conflict, NotFound
from clusterctl.client.controller import EventRecorder
from clusterctl.client.informer import Informer
from clusterctl.client.kubeconfig import ClusterCredentials
from clusterctl.client.rest import ApiClient, object_key
from node_runtime.config import AgentConfig
from node_runtime.images.pull_secrets import SecretUnreadable
from node_runtime.images.registry import RegistryClient, RegistryPolicy
from node_runtime.images.store import ImageStore
from node_runtime.logs import LogStore
from node_runtime.network import LoopbackNetwork, PodNetwork
from node_runtime.pods import LABEL_CONTAINER, LABEL_UID, PodWorker
from node_runtime.runtime.process import ContainerState, ProcessRuntime, check_capabilities
from node_runtime.stats import UsageSampler, usage_annotation

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_VERSION = f"v1.32.0+clusterctl.{node_runtime.__version__}"
USAGE_ANNOTATION = "clusterctl.io/usage"


def _micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _arch() -> str:
    m = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


def _os_image() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def node_capacity(config: AgentConfig) -> dict[str, str]:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    mem = psutil.virtual_memory().total
    try:
        disk = shutil.disk_usage(config.data_dir).total
    except OSError:
        disk = 0
    return {"cpu": str(cpus), "memory": f"{mem // 1024}Ki", "pods": str(config.max_pods),
            "ephemeral-storage": f"{disk // 1024}Ki"}


def make_client(config: AgentConfig) -> ApiClient:
    if config.kubeconfig:
        return ApiClient.from_kubeconfig(config.kubeconfig, user_agent=f"node-runtime/{config.node_name}",
                                         max_connections=config.api_connections)
    if not config.server:
        from node_runtime.config import ConfigError
        raise ConfigError("agent config needs kubeconfig, or server (+ token, ca_file)")
    creds = ClusterCredentials(server=config.server, token=config.token, ca_file=config.ca_file)
    return ApiClient(creds, user_agent=f"node-runtime/{config.node_name}", max_connections=config.api_connections)


class Agent:
    def __init__(self, config: AgentConfig, *, client: ApiClient | None = None, network: PodNetwork | None = None,
                 runtime: Any = None):
        self.config = config
        self.client = client or make_client(config)
        self.node_ip = config.address
        self.registry = RegistryClient(RegistryPolicy.from_config(config.registries_allowed, config.registries_insecure,
                                                                        config.registries_credentials))
        self.images = ImageStore(config.dir("images"), self.registry)
        self.events = EventRecorder(self.client, component="kubelet", host=config.node_name, writers=1)
        if runtime is None:
            if config.runtime == "podman":
                from node_runtime.podman import PodmanRuntime
                runtime = PodmanRuntime(node_name=config.safe_name, state_dir=config.dir("state"))
            else:
                runtime = ProcessRuntime(node_name=config.safe_name, state_dir=config.dir("state"))
        self.runtime = runtime
        self.reduced_mode = check_capabilities() if config.runtime == "process" else None
        self.network: PodNetwork = network or LoopbackNetwork(config.safe_name, self.node_ip)
        self.logs = LogStore(config.dir("logs"))
        self.sampler = UsageSampler()
        self.workers: dict[str, PodWorker] = {}
        self._adopted: dict[str, dict[str, ContainerState]] = defaultdict(dict)
        self._exited: dict[str, dict[str, ContainerState]] = defaultdict(dict)
        self.pods = Informer(self.client, "pods", field_selector=f"spec.nodeName={config.node_name}")
        self.services = Informer(self.client, "services")
        self.pods.add_handler(on_add=self._pod_event, on_update=lambda _o, n: self._pod_event(n), on_delete=self._pod_deleted)
        self.node: dict | None = None
        self.server = None
        self.endpoint_port: int = 0
        self._tasks: list[asyncio.Task] = []
        self.registered = asyncio.Event()
        self.stats = {"status_writes": 0, "lease_renewals": 0}

    # ------------------------------------------------------------------ helpers for workers

    async def lookup(self, kind: str, namespace: str, name: str) -> dict | None:
        resource = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
        try:
            return await self.client.get(resource, name, namespace=namespace)
        except NotFound:
            return None

    async def pull_secret(self, namespace: str, name: str) -> dict | None:
        """An image pull Secret of a pod (``images.pull_secrets.SecretReader``): None if it does not exist."""
        try:
            return await self.lookup("Secret", namespace, name)
        except (ApiError, ApiConnectionError) as exc:
            raise SecretUnreadable(f"secret {namespace}/{name}: {exc}") from exc

    def services_in(self, namespace: str) -> list[dict]:
        return [s for s in self.services.list() if s["metadata"].get("namespace") == namespace]

    async def write_pod_status(self, namespace: str, name: str, status: dict) -> None:
        await self.client.patch("pods", name, {"status": status}, namespace=namespace, subresource="status")
        self.stats["status_writes"] += 1

    def adopted_for(self, uid: str) -> bool:
        return bool(self._adopted.get(uid))

    def take_adopted(self, uid: str, container: str) -> ContainerState | None:
        return self._adopted.get(uid, {}).pop(container, None)

    def pop_adopted(self, uid: str) -> list[ContainerState]:
        return list(self._adopted.pop(uid, {}).values()) + list(self._exited.pop(uid, {}).values())

    def take_exited(self, uid: str, container: str) -> ContainerState | None:
        """A container of this pod that exited while no agent was running (see ``adopt``)."""
        return self._exited.get(uid, {}).pop(container, None)

    # ------------------------------------------------------------------ running

    async def run(self) -> None:
        """Run until cancelled. Pods keep running when this returns (see ``shutdown``)."""
        if self.reduced_mode:
            log.warning("node runtime in reduced mode: %s", self.reduced_mode)
        self.adopt()
        from node_runtime.server import AgentServer
        self.server = AgentServer(self)
        self.endpoint_port = await self.server.start(self.config.listen_address or self.config.address, self.config.listen_port)
        try:
            await self.register()
            self._tasks = [asyncio.create_task(self.services.run(), name="services informer"),
                           asyncio.create_task(self.pods.run(), name="pods informer"),
                           asyncio.create_task(self._lease_loop(), name="lease"),
                           asyncio.create_task(self._status_loop(), name="node status"),
                           asyncio.create_task(self._housekeeping(), name="housekeeping")]
            self.registered.set()
            await asyncio.gather(*self._tasks)
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self.server.stop()

    async def shutdown(self, *, stop_pods: bool = False) -> None:
        """Cancel every pod worker; with ``stop_pods`` stop their containers and sandboxes too."""
        workers = list(self.workers.values())
        for w in workers:
            if w.task:
                w.task.cancel()
        await asyncio.gather(*(w.task for w in workers if w.task), return_exceptions=True)
        if stop_pods:
            for w in workers:
                for rec in w.init + w.containers:
                    if rec.runtime_id and self.runtime.is_running(rec.runtime_id):
                        await self.runtime.stop(rec.runtime_id, 2.0)
                        await self.runtime.remove(rec.runtime_id)
                await w.teardown()
        await self.events.close()
        await self.registry.close()
        await self.client.close()

    def adopt(self) -> None:
        """Map containers still running from an earlier agent run back to their pods."""
        for state in self.runtime.adopt():
            uid, name = state.labels.get(LABEL_UID), state.labels.get(LABEL_CONTAINER)
            if uid and name:
                self._adopted[uid][name] = state
        # containers that died while no agent watched: the newest per pod container is kept so its
        # pod worker can report how it ended (and apply the restart policy) instead of rerunning it
        newest: dict[tuple[str, str], ContainerState] = {}
        for cid, state in self.runtime.known().items():
            if self.runtime.is_running(cid):
                continue
            uid, name = state.labels.get(LABEL_UID), state.labels.get(LABEL_CONTAINER)
            key = (uid or "", name or "")
            if uid and name and name not in self._adopted.get(uid, {}) and \
                    (key not in newest or newest[key].started_at < state.started_at):
                if key in newest:
                    asyncio.get_event_loop().create_task(self.runtime.remove(newest[key].id))
                newest[key] = state
            else:
                asyncio.get_event_loop().create_task(self.runtime.remove(cid))
        for (uid, name), state in newest.items():
            self._exited[uid][name] = state
        if self._adopted:
            log.info("adopted %d running containers of %d pods", sum(map(len, self._adopted.values())), len(self._adopted))

    def node_object(self) -> dict:
        cfg = self.config
        cap = node_capacity(cfg)
        uname = os.uname()
        labels = {"kubernetes.io/hostname": cfg.node_name, "kubernetes.io/os": "linux", "kubernetes.io/arch": _arch(),
                  "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": _arch(), **cfg.labels}
        spec: dict[str, Any] = {}
        if cfg.taints:
            spec["taints"] = list(cfg.taints)
        if cfg.pod_cidr:
            spec["podCIDR"] = cfg.pod_cidr
            spec["podCIDRs"] = [cfg.pod_cidr]
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": cfg.node_name, "labels": labels, "annotations": self._identity_annotations()},
            "spec": spec,
            "status": {
                "capacity": cap, "allocatable": dict(cap),
                "conditions": self._conditions({}),
                "addresses": [{"type": "InternalIP", "address": self.node_ip}, {"type": "Hostname", "address": cfg.node_name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": self.endpoint_port}},
                "nodeInfo": {"kernelVersion": uname.release, "osImage": _os_image(), "operatingSystem": "linux",
                             "architecture": _arch(), "containerRuntimeVersion": f"{self.runtime.name}://{node_runtime.__version__}",
                             "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                             "machineID": _machine_id(), "systemUUID": _machine_id(), "bootID": _boot_id()},
            },
        }

    def _conditions(self, previous: dict[str, dict]) -> list[dict]:
        now = _now()
        vm = psutil.virtual_memory()
        try:
            du = shutil.disk_usage(self.config.data_dir)
            disk_pressure = du.free < du.total * 0.1
        except OSError:
            disk_pressure = False
        items = [
            ("MemoryPressure", vm.available < vm.total * 0.05, "KubeletHasInsufficientMemory", "KubeletHasSufficientMemory",
             "kubelet has sufficient memory available"),
            ("DiskPressure", disk_pressure, "KubeletHasDiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", False, "KubeletHasInsufficientPID", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", True, "KubeletNotReady", "KubeletReady",
             "kubelet is posting ready status" + (f" (reduced mode: {self.reduced_mode})" if self.reduced_mode else "")),
        ]
        out = []
        for ctype, flag, bad, good, msg in items:
            status = "True" if flag else "False"
            prev = previous.get(ctype) or {}
            out.append({"type": ctype, "status": status, "reason": bad if flag and ctype != "Ready" else good, "message": msg,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status else now})
        return out

    async def register(self) -> None:
        await self._ensure_namespace(LEASE_NAMESPACE)
        body = self.node_object()
        while True:
            try:
                try:
                    node = await self.client.create(body)
                except (AlreadyExists, Conflict):
                    node = await self.client.get("nodes", self.config.node_name)
                    meta = node["metadata"]
                    labels = {**(meta.get("labels") or {}), **body["metadata"]["labels"]}
                    # a restarted agent may serve a new certificate: the API server must pin that one
                    patch: dict[str, Any] = {"metadata": {"labels": labels, "annotations": self._identity_annotations()}}
                    if self.config.taints:
                        patch["spec"] = {"taints": body["spec"]["taints"]}
                    node = await self.client.patch("nodes", self.config.node_name, patch)
                prev = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
                status = dict(body["status"], conditions=self._conditions(prev))
                self.node = await self.client.patch("nodes", self.config.node_name, {"status": status}, subresource="status")
                await self._renew_lease()
                return
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError) as exc:
                log.warning("registering node %s failed, retrying: %s", self.config.node_name, exc)
                await asyncio.sleep(1.0)

    async def _ensure_namespace(self, name: str) -> None:
        try:
            await self.client.get("namespaces", name)
        except NotFound:
            try:
                await self.client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            except (AlreadyExists, Conflict, ApiError):
                pass

    async def _renew_lease(self) -> None:
        name = self.config.node_name
        spec = {"holderIdentity": name, "leaseDurationSeconds": int(max(1, self.config.timings.lease_duration)), "renewTime": _micro_time()}
        try:
            await self.client.patch("leases", name, {"spec": spec}, namespace=LEASE_NAMESPACE)
        except NotFound:
            owner = []
            if self.node and self.node["metadata"].get("uid"):
                owner = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node["metadata"]["uid"]}]
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": LEASE_NAMESPACE, **({"ownerReferences": owner} if owner else {})},
                     "spec": spec}
            try:
                await self.client.create(lease)
            except AlreadyExists:
                pass
        self.stats["lease_renewals"] += 1

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.timings.lease_renew)
            try:
                await self._renew_lease()
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError) as exc:
                log.warning("lease renewal failed: %s", exc)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.timings.status_update)
            try:
                await self.post_node_status()
            except asyncio.CancelledError:
                raise
            except (ApiError, ApiConnectionError) as exc:
                log.warning("node status update failed: %s", exc)

    async def post_node_status(self) -> None:
        import orjson
        node = await self.client.get("nodes", self.config.node_name)
        prev = {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}
        status = {"conditions": self._conditions(prev), "daemonEndpoints": {"kubeletEndpoint": {"Port": self.endpoint_port}}}
        self.node = await self.client.patch("nodes", self.config.node_name, {"status": status}, subresource="status")
        usage = orjson.dumps(usage_annotation(self)).decode()
        annotations = {USAGE_ANNOTATION: usage, **self._identity_annotations()}
        self.node = await self.client.patch("nodes", self.config.node_name, {"metadata": {"annotations": annotations}})

    def _identity_annotations(self) -> dict[str, str]:
        """What lets the API server authenticate this agent's endpoint (its certificate's SHA-256)."""
        from node_runtime.server import SERVING_CERT_ANNOTATION
        sha = getattr(self.server, "cert_sha256", "")
        return {SERVING_CERT_ANNOTATION: sha} if sha else {}

    async def _housekeeping(self) -> None:
        await self.pods.wait_for_sync()
        await self._remove_orphans()
        next_gc = time.monotonic() + self.config.timings.image_gc_interval
        while True:
            await asyncio.sleep(max(1.0, self.config.timings.status_update))
            try:
                await asyncio.to_thread(self.logs.rotate)
            except OSError as exc:
                log.warning("log rotation: %s", exc)
            if time.monotonic() >= next_gc:
                next_gc = time.monotonic() + self.config.timings.image_gc_interval
                self.image_gc()

    def image_gc(self, *, force: bool = False) -> list[str]:
        """Like kubelet: when the disk is fuller than ``image_gc_high_percent``, remove images no pod
        on this node uses (never while a pull is in flight). Returns the removed image names."""
        if self.images._inflight:
            return []
        if not force:
            try:
                du = shutil.disk_usage(self.config.data_dir)
            except OSError:
                return []
            if du.used * 100 < du.total * self.config.timings.image_gc_high_percent:
                return []
        in_use = {c.get("image") for w in self.workers.values()
                  for c in (w.pod.get("spec") or {}).get("containers", []) + ((w.pod.get("spec") or {}).get("initContainers") or [])}
        removed = self.images.gc({i for i in in_use if i})
        if removed:
            log.info("image garbage collection removed %s", ", ".join(removed))
        return removed

    async def _remove_orphans(self) -> None:
        """Adopted containers whose pod no longer exists on this node: stop and forget them."""
        known = {w.uid for w in self.workers.values()}
        for uid in [u for u in list(self._adopted) + list(self._exited) if u not in known]:
            for state in self.pop_adopted(uid):
                log.info("removing orphaned container %s (pod uid %s is gone)", state.id, uid)
                if self.runtime.is_running(state.id):
                    await self.runtime.stop(state.id, 2.0)
                await self.runtime.remove(state.id)

    # ------------------------------------------------------------------ pod events

    def _pod_event(self, pod: dict) -> None:
        key = object_key(pod)
        worker = self.workers.get(key)
        uid = pod["metadata"].get("uid")
        if worker is not None and worker.uid != uid:
            worker.gone()
            worker = None
        if worker is None:
            worker = PodWorker(self, pod)
            self.workers[key] = worker
            worker.start()
            worker.task.add_done_callback(lambda t, k=key, w=worker: self._worker_done(k, w))
        else:
            worker.update(pod)

    def _worker_done(self, key: str, worker: PodWorker) -> None:
        if self.workers.get(key) is worker and worker._deleted.is_set():
            del self.workers[key]

    def _pod_deleted(self, pod: dict) -> None:
        worker = self.workers.get(object_key(pod))
        if worker is not None and worker.uid == pod["metadata"].get("uid"):
            worker.gone()


def _machine_id() -> str:
    for p in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            return Path(p).read_text().strip()
        except OSError:
            continue
    return ""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
