"""What the proxy should serve, computed from Services and Pods (pure functions, no I/O).

A *frontend* is one address a client connects to: ``(clusterIP, port)`` for every Service port,
plus ``("", nodePort)`` for NodePort Services (bound on each of the node's addresses). Its
backends are the ready ``addresses`` of the Service's v1 Endpoints (written by the endpoints
controller: Ready pods, a pod being deleted leaves at once, before its containers get SIGTERM,
and ``targetPort`` names already resolved per pod) for the port of the same name. Nodes may not
list every pod (the Node authorizer), which is why the proxy reads Endpoints, as kube-proxy does.

``endpoints_from_pods`` computes the same Endpoints from Pods, for running without a control
plane; its readiness rule (Running, Ready=True, no deletionTimestamp) is the controller's.
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


def _key(obj: dict) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def endpoints_from_pods(services: list[dict], pods: list[dict]) -> list[dict]:
    """v1 Endpoints as the endpoints controller writes them (ready pods only; one subset per
    pod), for running the proxy without a control plane (``standalone``) and for tests."""
    ready = ready_pods_by_namespace(pods)
    out = []
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not selector:
            continue
        subsets = []
        for pod in sorted(ready.get(meta.get("namespace", "default"), []), key=lambda p: p["status"]["podIP"]):
            if not selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {}):
                continue
            ports = []
            for p in spec.get("ports") or []:
                tp = resolve_target_port(pod, p.get("targetPort"), int(p["port"]))
                if tp is not None:
                    ports.append({"name": p.get("name") or "", "port": tp, "protocol": p.get("protocol") or "TCP"})
            if ports or not spec.get("ports"):     # a port-less (headless) Service still lists its pods
                subsets.append({"addresses": [{"ip": pod["status"]["podIP"]}], "ports": ports})
        out.append({"metadata": {"name": meta.get("name"), "namespace": meta.get("namespace", "default")}, "subsets": subsets})
    return out


def endpoint_addresses(endpoints: dict | None) -> list[str]:
    """The ready addresses of a v1 Endpoints object (headless DNS answers)."""
    return sorted({a["ip"] for ss in (endpoints or {}).get("subsets") or [] for a in ss.get("addresses") or [] if a.get("ip")})


def _backends(endpoints: dict | None, port_name: str) -> list[Backend]:
    out = []
    for ss in (endpoints or {}).get("subsets") or []:
        port = next((p for p in ss.get("ports") or [] if (p.get("name") or "") == port_name
                     and (p.get("protocol") or "TCP") == "TCP"), None)
        if port is None:
            continue
        out += [Backend(a["ip"], int(port["port"])) for a in ss.get("addresses") or [] if a.get("ip")]
    return sorted(set(out), key=lambda b: (b.ip, b.port))


def build_frontends(services: list[dict], endpoints: list[dict]) -> dict[tuple[str, int], Frontend]:
    """Frontends of every proxied Service, backends from its v1 Endpoints' ready ``addresses``."""
    by_key = {_key(e): e for e in endpoints}
    out: dict[tuple[str, int], Frontend] = {}
    for svc in services:
        spec = svc.get("spec") or {}
        cluster_ip = spec.get("clusterIP")
        stype = spec.get("type", "ClusterIP")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer") or not cluster_ip or cluster_ip == "None":
            continue                           # headless and ExternalName Services have no proxy
        if not spec.get("selector"):
            continue                           # no selector: nothing to forward to (and the DNS Service is served by DNS)
        key = _key(svc)
        ep = by_key.get(key)
        affinity = None
        if spec.get("sessionAffinity") == "ClientIP":
            cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
            affinity = float(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
        for p in spec.get("ports") or []:
            if (p.get("protocol") or "TCP") != "TCP":
                continue
            backends = _backends(ep, p.get("name") or "")
            fe = Frontend(key, p.get("name") or "", cluster_ip, int(p["port"]), backends, affinity)
            out[fe.key] = fe
            if stype in ("NodePort", "LoadBalancer") and p.get("nodePort"):
                np_ = Frontend(key, p.get("name") or "", "", int(p["nodePort"]), list(backends), affinity)
                out[np_.key] = np_
    return out
