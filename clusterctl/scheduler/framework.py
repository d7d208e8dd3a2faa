"""The scheduling framework: plugin Protocols, ``Status``, and the per-pod / per-node views plugins read.

Shaped after kube-scheduler's ``framework/interface.go``, cut down to what this cluster needs:
- ``FilterPlugin``: ``pre_filter(pod)`` may answer ``SKIP`` (the pod asks nothing this plugin
  checks, e.g. no nodeSelector) so the hot loop never calls it; ``filter(pod, node)`` answers
  ``SUCCESS`` or ``UNSCHEDULABLE`` with human reasons ("Insufficient cpu") that feed the
  "0/3 nodes are available: ..." message and the explain table.
- ``ScorePlugin``: ``score(pod, node, state) -> int`` per feasible node, then
  ``normalize(pod, scores)`` maps raw scores onto 0..``MAX_NODE_SCORE``; ``weight`` multiplies.
``PodInfo`` is computed once per pod (requests, selectors, tolerations, ports) and ``NodeInfo``
is the scheduler's cache of a node plus the pods on it and what they request — so a scheduling
cycle is pure arithmetic over caches, with no API calls.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from clusterctl.client.quantity import cpu_millis, memory_bytes

Obj = dict[str, Any]

MAX_NODE_SCORE = 100
#: what scoring assumes a container without requests uses (kube-scheduler's non-zero defaults)
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024


class Code(enum.Enum):
    SUCCESS = "Success"
    UNSCHEDULABLE = "Unschedulable"
    #: preemption cannot help (e.g. a node selector mismatch)
    UNSCHEDULABLE_AND_UNRESOLVABLE = "UnschedulableAndUnresolvable"
    SKIP = "Skip"
    ERROR = "Error"


@dataclass(frozen=True)
class Status:
    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code in (Code.SUCCESS, Code.SKIP)

    @property
    def resolvable_by_preemption(self) -> bool:
        return self.code == Code.UNSCHEDULABLE

    def __str__(self) -> str:
        return "ok" if self.ok else "; ".join(self.reasons) or self.code.value


SUCCESS = Status()
SKIP = Status(Code.SKIP)


def unschedulable(plugin: str, *reasons: str, resolvable: bool = True) -> Status:
    return Status(Code.UNSCHEDULABLE if resolvable else Code.UNSCHEDULABLE_AND_UNRESOLVABLE, tuple(reasons), plugin)


@dataclass(frozen=True)
class Resources:
    """A resource vector: millicores, bytes, pod count."""

    milli_cpu: int = 0
    memory: int = 0
    pods: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu + other.milli_cpu, self.memory + other.memory, self.pods + other.pods)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.milli_cpu - other.milli_cpu, self.memory - other.memory, self.pods - other.pods)

    @classmethod
    def from_resource_list(cls, rl: Obj | None, *, pods_default: int = 0) -> Resources:
        rl = rl or {}
        pods = rl.get("pods")
        return cls(cpu_millis(rl.get("cpu")), memory_bytes(rl.get("memory")), int(memory_bytes(pods)) if pods is not None else pods_default)


def pod_requests(pod: Obj, *, non_zero: bool = False) -> tuple[int, int]:
    """(milliCPU, memory) the pod asks for: max(sum of containers, largest init container), plus overhead.

    ``non_zero`` substitutes kube-scheduler's defaults for containers that request nothing (used by
    scoring, so empty pods still spread).
    """
    spec = pod.get("spec") or {}
    cpu = mem = 0
    for c in spec.get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") or {}
        c_cpu, c_mem = cpu_millis(req.get("cpu")), memory_bytes(req.get("memory"))
        if non_zero:
            c_cpu = c_cpu or DEFAULT_MILLI_CPU_REQUEST
            c_mem = c_mem or DEFAULT_MEMORY_REQUEST
        cpu += c_cpu
        mem += c_mem
    for c in spec.get("initContainers") or []:
        req = (c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") or {}
        if c.get("restartPolicy") == "Always":  # sidecar: runs alongside, adds up
            cpu += cpu_millis(req.get("cpu"))
            mem += memory_bytes(req.get("memory"))
            continue
        cpu = max(cpu, cpu_millis(req.get("cpu")))
        mem = max(mem, memory_bytes(req.get("memory")))
    overhead = spec.get("overhead") or {}
    return cpu + cpu_millis(overhead.get("cpu")), mem + memory_bytes(overhead.get("memory"))


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


@dataclass(frozen=True)
class HostPort:
    protocol: str
    ip: str
    port: int

    def conflicts(self, other: HostPort) -> bool:
        if self.port != other.port or self.protocol != other.protocol:
            return False
        wildcard = ("", "0.0.0.0", "::")
        return self.ip in wildcard or other.ip in wildcard or self.ip == other.ip


@dataclass
class PodInfo:
    """What the plugins need to know about one pod, computed once."""

    pod: Obj
    key: str
    uid: str
    namespace: str
    name: str
    labels: dict[str, str]
    requests: Resources
    non_zero_cpu: int
    non_zero_memory: int
    priority: int
    preemption_policy: str
    node_selector: dict[str, str]
    required_terms: list[Obj] | None
    preferred_terms: list[Obj]
    tolerations: list[Obj]
    host_ports: list[HostPort]
    owner_uid: str | None
    node_name: str
    terminating: bool = False
    nominated_node: str = ""

    @classmethod
    def of(cls, pod: Obj) -> PodInfo:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        cpu, mem = pod_requests(pod)
        nz_cpu, nz_mem = pod_requests(pod, non_zero=True)
        node_affinity = (spec.get("affinity") or {}).get("nodeAffinity") or {}
        required = (node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        ports: list[HostPort] = []
        for c in spec.get("containers") or []:
            for p in c.get("ports") or []:
                if p.get("hostPort"):
                    ports.append(HostPort(p.get("protocol") or "TCP", p.get("hostIP") or "", int(p["hostPort"])))
        owner = next((r.get("uid") for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if owner is None and meta.get("ownerReferences"):
            owner = meta["ownerReferences"][0].get("uid")
        return cls(
            pod=pod, key=pod_key(pod), uid=str(meta.get("uid") or ""), namespace=meta.get("namespace") or "default",
            name=str(meta.get("name")), labels=dict(meta.get("labels") or {}),
            requests=Resources(cpu, mem, 1), non_zero_cpu=nz_cpu, non_zero_memory=nz_mem,
            priority=int(spec.get("priority") or 0), preemption_policy=spec.get("preemptionPolicy") or "PreemptLowerPriority",
            node_selector=dict(spec.get("nodeSelector") or {}), required_terms=required,
            preferred_terms=list(node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []),
            tolerations=list(spec.get("tolerations") or []), host_ports=ports, owner_uid=owner,
            node_name=spec.get("nodeName") or "", terminating=bool(meta.get("deletionTimestamp")),
            nominated_node=(pod.get("status") or {}).get("nominatedNodeName") or "",
        )


def node_condition(node: Obj, ctype: str) -> str:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == ctype:
            return str(cond.get("status"))
    return "Unknown"


@dataclass
class NodeInfo:
    """A node and the pods the scheduler counts on it (bound or assumed)."""

    name: str
    node: Obj
    labels: dict[str, str]
    allocatable: Resources
    taints: list[Obj]
    unschedulable: bool
    ready: str
    requested: Resources = Resources()
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    pods: dict[str, PodInfo] = field(default_factory=dict)
    used_ports: list[HostPort] = field(default_factory=list)
    owner_counts: dict[str, int] = field(default_factory=dict)
    generation: int = 0
    #: allocatable - requested, kept as plain ints for the filter hot loop
    free_milli_cpu: int = 0
    free_memory: int = 0
    free_pods: int = 0
    #: allocatable cpu/memory as plain ints for the scoring hot loop
    alloc_milli_cpu: int = 0
    alloc_memory: int = 0
    #: Ready and not cordoned: the one check NodeReadySchedulable's hot loop makes per node
    usable: bool = False
    #: scores a plugin memoized for this node at one ``generation`` (see plugins/allocation.py)
    score_memo: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    def _refresh_free(self) -> None:
        self.alloc_milli_cpu = self.allocatable.milli_cpu
        self.alloc_memory = self.allocatable.memory
        self.free_milli_cpu = self.allocatable.milli_cpu - self.requested.milli_cpu
        self.free_memory = self.allocatable.memory - self.requested.memory
        self.free_pods = self.allocatable.pods - self.requested.pods

    @classmethod
    def of(cls, node: Obj) -> NodeInfo:
        info = cls(name="", node={}, labels={}, allocatable=Resources(), taints=[], unschedulable=False, ready="Unknown")
        info.set_node(node)
        return info

    def set_node(self, node: Obj) -> None:
        status = node.get("status") or {}
        spec = node.get("spec") or {}
        self.name = (node.get("metadata") or {}).get("name") or ""
        self.node = node
        self.labels = dict((node.get("metadata") or {}).get("labels") or {})
        self.allocatable = Resources.from_resource_list(status.get("allocatable") or status.get("capacity"), pods_default=110)
        self.taints = list(spec.get("taints") or [])
        self.unschedulable = bool(spec.get("unschedulable"))
        self.ready = node_condition(node, "Ready")
        self.usable = self.ready == "True" and not self.unschedulable
        self.generation += 1
        self._refresh_free()

    def add_pod(self, info: PodInfo) -> None:
        if info.key in self.pods:
            self.remove_pod(info.key)
        self.pods[info.key] = info
        self.requested = self.requested + info.requests
        self.non_zero_cpu += info.non_zero_cpu
        self.non_zero_memory += info.non_zero_memory
        self.used_ports.extend(info.host_ports)
        if info.owner_uid:
            self.owner_counts[info.owner_uid] = self.owner_counts.get(info.owner_uid, 0) + 1
        self.generation += 1
        self._refresh_free()

    def remove_pod(self, key: str) -> PodInfo | None:
        info = self.pods.pop(key, None)
        if info is None:
            return None
        self.requested = self.requested - info.requests
        self.non_zero_cpu -= info.non_zero_cpu
        self.non_zero_memory -= info.non_zero_memory
        for hp in info.host_ports:
            self.used_ports.remove(hp)
        if info.owner_uid:
            left = self.owner_counts.get(info.owner_uid, 0) - 1
            if left > 0:
                self.owner_counts[info.owner_uid] = left
            else:
                self.owner_counts.pop(info.owner_uid, None)
        self.generation += 1
        self._refresh_free()
        return info

    def clone(self) -> NodeInfo:
        """A copy whose pod set can be changed (preemption's what-if) without touching the cache."""
        copy = NodeInfo(self.name, self.node, self.labels, self.allocatable, self.taints, self.unschedulable, self.ready,
                        self.requested, self.non_zero_cpu, self.non_zero_memory, dict(self.pods), list(self.used_ports),
                        dict(self.owner_counts), self.generation)
        copy.usable = self.usable
        copy._refresh_free()
        return copy


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def pre_filter(self, pod: PodInfo) -> Status:
        """``SKIP`` when this pod asks nothing of this plugin; ``SUCCESS`` otherwise."""

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        """Can the pod run on this node?"""


@runtime_checkable
class ScorePlugin(Protocol):
    name: str
    weight: int

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        """A raw score for a feasible node (higher is better)."""

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        """Rescale raw scores in place onto 0..MAX_NODE_SCORE (no-op when already there)."""


def default_normalize(scores: dict[str, int], *, reverse: bool = False) -> None:
    """kube-scheduler's DefaultNormalizeScore: scale to 0..100 by the max; ``reverse`` flips it."""
    if not scores:
        return
    top = max(scores.values())
    if top == 0:
        if reverse:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
        return
    for k, v in scores.items():
        s = MAX_NODE_SCORE * v // top
        scores[k] = MAX_NODE_SCORE - s if reverse else s


def run_filters(plugins: Iterable[FilterPlugin], pod: PodInfo, node: NodeInfo) -> Status:
    """First failing plugin's status (kube-scheduler stops at the first failure per node)."""
    for plugin in plugins:
        status = plugin.filter(pod, node)
        if not status.ok:
            return status
    return SUCCESS


def fits(pod: PodInfo | Obj, node: NodeInfo, plugins: Iterable[FilterPlugin] | None = None) -> Status:
    """Would the pod fit this node under the default filters? Pure; no cache or API involved."""
    from clusterctl.scheduler.plugins import default_filters

    info = pod if isinstance(pod, PodInfo) else PodInfo.of(pod)
    active = [p for p in (plugins if plugins is not None else default_filters()) if p.pre_filter(info).code != Code.SKIP]
    return run_filters(active, info, node)
