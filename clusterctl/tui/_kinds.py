"""The resource views: which resource each shows, its ``:`` aliases, columns, cells and colours.

Cells come from ``clusterctl.api.tables`` (the same printers the API server uses for
``kubectl get``) so the TUI and kubectl agree; the Nodes view adds requested-vs-allocatable bars and
a pod count from the pods informer's node index, Services add their endpoints. Row colour follows
state the way k9s does: red failing, yellow in progress, dim finished, magenta terminating.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from clusterctl.api import tables
from clusterctl.client.quantity import cpu_millis, memory_bytes
from clusterctl.client.rest import Obj

if TYPE_CHECKING:
    from clusterctl.tui._source import ClusterSource

RowFunc = Callable[[Obj, datetime, "ClusterSource"], list[str]]


@dataclass(frozen=True)
class KindView:
    name: str  # the view's title
    resource: str  # informer plural
    kind: str
    aliases: tuple[str, ...]
    namespaced: bool
    columns: tuple[str, ...]
    row: RowFunc
    style: Callable[[Obj, list[str]], str] = lambda obj, cells: ""
    #: other resources whose changes re-render rows of this view: resource → obj → keys of ours
    depends: dict[str, Callable[[Obj], list[str]]] = field(default_factory=dict)
    scalable: bool = False


def bar(used: float, total: float, width: int = 10) -> str:
    """``[#####     ] 50%`` (text only, so snapshots and tmux captures read the same)."""
    frac = 0.0 if total <= 0 else max(0.0, min(1.0, used / total))
    filled = round(frac * width)
    return "[" + "#" * filled + " " * (width - filled) + f"] {round(frac * 100):>3}%"


def _printed(kind: str, *, namespaced: bool) -> tuple[tuple[str, ...], RowFunc]:
    printer = tables.printer_for(kind)
    cols = printer.columns()
    keep = [i for i, c in enumerate(cols) if c.priority == 0]
    names = tuple(cols[i].name.upper() for i in keep)

    def row(obj: Obj, now: datetime, _source: ClusterSource) -> list[str]:
        cells = tables._row_or_unknown(printer, obj, now, len(cols))
        out = [str(cells[i]) for i in keep]
        return [obj["metadata"].get("namespace", "")] + out if namespaced else out
    return (("NAMESPACE",) + names if namespaced else names), row


# ----------------------------------------------------------------------------- pods

POD_COLUMNS = ("NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "IP")


def _pod_row(obj: Obj, now: datetime, _source: ClusterSource) -> list[str]:
    cells = tables._row_or_unknown(tables.printer_for("Pod"), obj, now, 9)
    name, ready, status, restarts, age, ip, node = (str(c) for c in cells[:7])
    return [obj["metadata"].get("namespace", ""), name, ready, status, restarts, age, node, ip]


def pod_style(obj: Obj, cells: list[str]) -> str:
    status = cells[3]
    if (obj.get("metadata") or {}).get("deletionTimestamp") or status == "Terminating":
        return "magenta"
    if status in ("Completed", "Succeeded"):
        return "dim"
    if status in ("Failed", "Error", "CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "Evicted", "OOMKilled", "Unknown") \
            or status.startswith("Init:Err") or status.startswith("Init:Crash"):
        return "red"
    ready, _, total = cells[2].partition("/")
    if status == "Running" and ready == total:
        return ""
    return "yellow"


# ----------------------------------------------------------------------------- nodes

NODE_COLUMNS = ("NAME", "STATUS", "ROLES", "VERSION", "CPU REQ", "MEM REQ", "PODS", "AGE")


def pod_requests(pod: Obj) -> tuple[int, int]:
    cpu = mem = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = (c.get("resources") or {}).get("requests") or {}
        cpu += cpu_millis(req.get("cpu"))
        mem += memory_bytes(req.get("memory"))
    return cpu, mem


def active_pod(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def node_usage(node: Obj, source: ClusterSource) -> tuple[int, int, int, int, int]:
    """(pods, cpu requested m, cpu allocatable m, memory requested, memory allocatable)."""
    name = node["metadata"]["name"]
    pods = [p for p in source.informers["pods"].by_index("node", name) if active_pod(p)]
    cpu = mem = 0
    for p in pods:
        c, m = pod_requests(p)
        cpu, mem = cpu + c, mem + m
    alloc = (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity") or {}
    return len(pods), cpu, cpu_millis(alloc.get("cpu")), mem, memory_bytes(alloc.get("memory"))


def _node_row(obj: Obj, now: datetime, source: ClusterSource) -> list[str]:
    pods, cpu, cpu_alloc, mem, mem_alloc = node_usage(obj, source)
    info = (obj.get("status") or {}).get("nodeInfo") or {}
    age = tables._since((obj.get("metadata") or {}).get("creationTimestamp"), now)
    return [obj["metadata"]["name"], tables.node_status(obj), tables.node_roles(obj), info.get("kubeletVersion", ""),
            bar(cpu, cpu_alloc), bar(mem, mem_alloc), str(pods), age]


def node_style(obj: Obj, cells: list[str]) -> str:
    if not cells[1].startswith("Ready"):
        return "red"
    return "yellow" if "SchedulingDisabled" in cells[1] else ""


def _pod_node(pod: Obj) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


# ----------------------------------------------------------------------------- services

def _service_row_factory() -> tuple[tuple[str, ...], RowFunc]:
    cols, base = _printed("Service", namespaced=True)

    def row(obj: Obj, now: datetime, source: ClusterSource) -> list[str]:
        meta = obj["metadata"]
        ep = source.get("endpoints", f"{meta.get('namespace')}/{meta['name']}")
        return base(obj, now, source) + [tables.format_endpoints(ep) if ep else "<none>"]
    return cols + ("ENDPOINTS",), row


def _same_key(obj: Obj) -> list[str]:
    meta = obj["metadata"]
    return [f"{meta.get('namespace')}/{meta['name']}"]


def _workload_style(obj: Obj, cells: list[str]) -> str:
    status = obj.get("status") or {}
    want = (obj.get("spec") or {}).get("replicas")
    if want is not None and (status.get("readyReplicas") or 0) < want:
        return "yellow"
    return ""


def _event_style(obj: Obj, cells: list[str]) -> str:
    return "yellow" if obj.get("type") == "Warning" else ""


def _job_style(obj: Obj, cells: list[str]) -> str:
    status = tables.job_status(obj)
    return "red" if status == "Failed" else "dim" if status == "Complete" else "yellow"


def _build() -> dict[str, KindView]:
    views: list[KindView] = [
        KindView("Pods", "pods", "Pod", ("po", "pod", "pods"), True, POD_COLUMNS, _pod_row, pod_style),
        KindView("Nodes", "nodes", "Node", ("no", "node", "nodes"), False, NODE_COLUMNS, _node_row, node_style,
                 depends={"pods": _pod_node}),
    ]
    for title, resource, kind, aliases, style, scalable in (
        ("Deployments", "deployments", "Deployment", ("deploy", "deployment", "deployments", "dp"), _workload_style, True),
        ("ReplicaSets", "replicasets", "ReplicaSet", ("rs", "replicaset", "replicasets"), _workload_style, True),
        ("DaemonSets", "daemonsets", "DaemonSet", ("ds", "daemonset", "daemonsets"), lambda o, c: "", False),
        ("StatefulSets", "statefulsets", "StatefulSet", ("sts", "statefulset", "statefulsets"), _workload_style, True),
        ("Jobs", "jobs", "Job", ("job", "jobs"), _job_style, False),
        ("CronJobs", "cronjobs", "CronJob", ("cj", "cronjob", "cronjobs"), lambda o, c: "", False),
        ("Events", "events", "Event", ("ev", "event", "events"), _event_style, False),
    ):
        cols, row = _printed(kind, namespaced=True)
        views.append(KindView(title, resource, kind, aliases, True, cols, row, style, scalable=scalable))
    svc_cols, svc_row = _service_row_factory()
    views.append(KindView("Services", "services", "Service", ("svc", "service", "services"), True, svc_cols, svc_row,
                          depends={"endpoints": _same_key}))
    ns_cols, ns_row = _printed("Namespace", namespaced=False)
    views.append(KindView("Namespaces", "namespaces", "Namespace", ("ns", "namespace", "namespaces"), False, ns_cols, ns_row,
                          lambda o, c: "magenta" if c[1] == "Terminating" else ""))
    return {v.resource: v for v in views}


KINDS: dict[str, KindView] = _build()
ALIASES: dict[str, str] = {alias: v.resource for v in KINDS.values() for alias in (*v.aliases, v.name.lower())}
#: views that are not resource tables
SPECIAL_ALIASES: dict[str, str] = {"overview": "overview", "ov": "overview", "home": "overview", "pulses": "overview",
                                   "provision": "feed", "feed": "feed", "upgrade": "feed", "hosts": "hosts", "host": "hosts",
                                   "rollout": "rollout", "ro": "rollout"}


def resolve_alias(text: str) -> str | None:
    """``po`` → ``pods``; ``overview``/``feed``/... for the special views; None when unknown."""
    word = text.strip().lower()
    return ALIASES.get(word) or SPECIAL_ALIASES.get(word)
