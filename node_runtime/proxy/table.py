"""What the proxy should serve, computed from Services and Pods (pure functions, no I/O).

A *frontend* is one address a client connects to: ``(clusterIP, port)`` for every Service port,
plus ``("", nodePort)`` for NodePort Services (bound on each of the node's addresses). Its
backends are the ``(podIP, targetPort)`` of the Service's **ready** pods: selector matches,
phase Running, condition Ready=True, no deletionTimestamp (a pod being deleted leaves at once,
before its containers get SIGTERM, so rollouts drop nothing). ``targetPort`` may name a
container port, which is resolved per pod, as Kubernetes does.

The proxy reads pods directly rather than Endpoints/EndpointSlices: the readiness facts are
the pod's own, and one less controller hop means a pod leaves the rotation one watch event
after it stops being ready.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_AFFINITY_TIMEOUT = 10800.0


@dataclass(frozen=True)
class Backend:
    ip: str
    port: int


@dataclass
class Frontend:
    service: str                     # namespace/name
    port_name: str
    ip: str                          # "" = every node address (NodePort)
    port: int
    backends: list[Backend] = field(default_factory=list)
    affinity_timeout: float | None = None    # sessionAffinity ClientIP

    @property
    def key(self) -> tuple[str, int]:
        return (self.ip, self.port)


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_is_ready(pod: dict) -> bool:
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not status.get("podIP"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def resolve_target_port(pod: dict, target: int | str | None, port: int) -> int | None:
    if target in (None, ""):
        return port
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        return int(target)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == "TCP":
                return int(p["containerPort"])
    return None


def ready_pods_by_namespace(pods: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for pod in pods:
        if pod_is_ready(pod):
            out.setdefault((pod.get("metadata") or {}).get("namespace", "default"), []).append(pod)
    return out


def build_frontends(services: list[dict], pods: list[dict]) -> dict[tuple[str, int], Frontend]:
    ready = ready_pods_by_namespace(pods)
    out: dict[tuple[str, int], Frontend] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ns = meta.get("namespace", "default")
        cluster_ip = spec.get("clusterIP")
        stype = spec.get("type", "ClusterIP")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer") or not cluster_ip or cluster_ip == "None":
            continue                           # headless and ExternalName Services have no proxy
        selector = spec.get("selector") or {}
        if not selector:
            continue                           # no selector: nothing to forward to (and the DNS Service is served by DNS)
        members = [p for p in ready.get(ns, []) if selector_matches(selector, (p.get("metadata") or {}).get("labels") or {})]
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = float(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        for p in spec.get("ports") or []:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            backends = []
            for pod in sorted(members, key=lambda x: x["status"]["podIP"]):
                tp = resolve_target_port(pod, p.get("targetPort"), int(p["port"]))
                if tp is not None:
                    backends.append(Backend(pod["status"]["podIP"], tp))
            key = f"{ns}/{meta.get('name')}"
            fe = Frontend(key, p.get("name") or "", cluster_ip, int(p["port"]), backends, affinity)
            out[fe.key] = fe
            if stype in ("NodePort", "LoadBalancer") and p.get("nodePort"):
                np_ = Frontend(key, p.get("name") or "", "", int(p["nodePort"]), list(backends), affinity)
                out[np_.key] = np_
    return out
