"""Endpoints and EndpointSlices: which pod IPs and ports stand behind each Service with a selector.

``reconcile(namespace/service)`` reads the selected pods that have an IP and have not finished,
resolves every Service port's ``targetPort`` (a number, or a container port NAME looked up in
each pod — pods lacking that name are left out of that port set) and writes:
- ``core/v1 Endpoints`` (same name as the Service): ready pods in ``addresses``, unready ones in
  ``notReadyAddresses`` (or all in ``addresses`` with ``publishNotReadyAddresses``), one subset
  per distinct resolved port set; pods being deleted are left out altogether;
- ``discovery.k8s.io/v1 EndpointSlices`` named ``<service>-<hash of the port set>`` (label
  ``kubernetes.io/service-name``, owned by the Service so the collector removes them with it):
  every endpoint with ``conditions.ready`` (ready and not terminating), ``serving`` (ready) and
  ``terminating``; every port carries ``name`` (even ``""``). At most 100 endpoints a slice.
A pod that gets a ``deletionTimestamp`` stops being ready at that event — before its containers
are told to stop — which is what lets a rolling update drop no request: the service proxy stops
sending new connections while the old pod still serves the ones it has. Writes happen only when
the computed object differs from the cached one. Services without a selector are left to whoever
writes their Endpoints by hand.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from clusterctl.client.controller import Controller
from clusterctl.client.errors import AlreadyExists, Conflict, NotFound
from clusterctl.client.rest import ApiClient, Obj, split_key
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100


def resolve_ports(service: Obj, pod: Obj) -> tuple[tuple[str, int, str, str | None], ...] | None:
    """``(name, port, protocol, appProtocol)`` per Service port for this pod; None when a named port is missing."""
    out = []
    containers = (pod.get("spec") or {}).get("containers") or []
    for sp in (service.get("spec") or {}).get("ports") or []:
        target = sp.get("targetPort", sp.get("port"))
        protocol = sp.get("protocol") or "TCP"
        if isinstance(target, str) and not target.isdigit():
            number = next((cp.get("containerPort") for c in containers for cp in c.get("ports") or []
                           if cp.get("name") == target and (cp.get("protocol") or "TCP") == protocol), None)
            if number is None:
                return None
        else:
            number = int(target if target is not None else sp.get("port"))
        out.append((sp.get("name") or "", int(number), protocol, sp.get("appProtocol")))
    return tuple(out)


def _port_dicts(ports: tuple[tuple[str, int, str, str | None], ...], *, endpoints_style: bool) -> list[dict[str, Any]]:
    result = []
    for name, port, protocol, app in ports:
        d: dict[str, Any] = {"name": name, "port": port, "protocol": protocol}
        if endpoints_style and not name:
            d.pop("name")
        if app:
            d["appProtocol"] = app
        result.append(d)
    return result


def _target_ref(pod: Obj) -> dict[str, Any]:
    m = P.meta(pod)
    return {"kind": "Pod", "namespace": m.get("namespace"), "name": m.get("name"), "uid": m.get("uid")}


def _ip_key(pod: Obj) -> tuple:
    ip = (pod.get("status") or {}).get("podIP") or ""
    return tuple(int(x) if x.isdigit() else 0 for x in ip.split(".")) + (P.meta(pod).get("name") or "",)


class EndpointsController(Controller):
    name = "endpoint-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, workers: int = 4,
                 endpoints: bool = True, slices: bool = True) -> None:
        super().__init__(client, workers=workers)
        self.write_endpoints = endpoints
        self.write_slices = slices
        self.services = informers.get("services")
        self.pods = informers.get("pods")
        self.watch(self.services)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed)
        if endpoints:
            self.endpoints = informers.get("endpoints")
            self.watch(self.endpoints)
        if slices:
            self.slices = informers.get("endpointslices")
            self.slices.add_indexer("service", lambda s: [f"{P.meta(s).get('namespace')}/{(P.meta(s).get('labels') or {}).get(SERVICE_NAME_LABEL)}"]
                                    if (P.meta(s).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY else [])
            self.watch(self.slices, self._slice_service)

    def _slice_service(self, s: Obj) -> str | None:
        labels = P.meta(s).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY or not labels.get(SERVICE_NAME_LABEL):
            return None
        return f"{P.meta(s).get('namespace')}/{labels[SERVICE_NAME_LABEL]}"

    def _pod_changed(self, pod: Obj) -> None:
        ns = P.meta(pod).get("namespace")
        for svc in self.services.by_index("namespace", ns):
            if P.matches(P.selector_of({"matchLabels": (svc.get("spec") or {}).get("selector")}), pod):
                self.queue.add(f"{ns}/{P.meta(svc)['name']}")

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        self._pod_changed(pod)
        if (P.meta(old).get("labels") or {}) != (P.meta(pod).get("labels") or {}):
            self._pod_changed(old)

    # ----------------------------------------------------------------- reconcile

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.services.get(key)
        if svc is None:
            if self.write_endpoints and self.endpoints.get(key) is not None:
                try:
                    await self.client.delete("endpoints", name, namespace=namespace)
                except NotFound:
                    pass
            return  # slices are owned by the Service: the garbage collector removes them
        selector = (svc.get("spec") or {}).get("selector")
        if not selector or (svc.get("spec") or {}).get("type") == "ExternalName":
            return
        sel = P.selector_of({"matchLabels": selector})
        pods = sorted((p for p in self.pods.by_index("namespace", namespace)
                       if P.matches(sel, p) and (p.get("status") or {}).get("podIP") and not P.is_terminal(p)), key=_ip_key)
        groups: dict[tuple, list[Obj]] = {}
        for pod in pods:
            ports = resolve_ports(svc, pod)
            if ports is not None:
                groups.setdefault(ports, []).append(pod)
        if self.write_endpoints:
            await self.sync_endpoints(svc, groups)
        if self.write_slices:
            await self.sync_slices(svc, groups)

    def desired_endpoints(self, svc: Obj, groups: dict[tuple, list[Obj]]) -> Obj:
        m = P.meta(svc)
        publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
        subsets = []
        for ports, pods in groups.items():
            ready, not_ready = [], []
            for pod in pods:
                if P.is_terminating(pod) and not publish:
                    continue
                addr = {"ip": pod["status"]["podIP"], "targetRef": _target_ref(pod)}
                if (pod.get("spec") or {}).get("nodeName"):
                    addr["nodeName"] = pod["spec"]["nodeName"]
                (ready if publish or (P.is_ready(pod) and not P.is_terminating(pod)) else not_ready).append(addr)
            if not ready and not not_ready:
                continue
            subset: dict[str, Any] = {"ports": _port_dicts(ports, endpoints_style=True)}
            if ready:
                subset["addresses"] = ready
            if not_ready:
                subset["notReadyAddresses"] = not_ready
            subsets.append(subset)
        labels = dict(m.get("labels") or {})
        return {"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": m["name"], "namespace": m.get("namespace"), **({"labels": labels} if labels else {})},
                "subsets": subsets}

    async def sync_endpoints(self, svc: Obj, groups: dict[tuple, list[Obj]]) -> None:
        want = self.desired_endpoints(svc, groups)
        m = want["metadata"]
        have = self.endpoints.get(f"{m['namespace']}/{m['name']}")
        if have is None:
            try:
                await self.client.create(want)
                return
            except AlreadyExists:
                have = await self.client.get("endpoints", m["name"], namespace=m["namespace"])
        if (have.get("subsets") or []) == want["subsets"] and (P.meta(have).get("labels") or {}) == (m.get("labels") or {}):
            return
        body = dict(want, metadata=dict(m, resourceVersion=P.meta(have).get("resourceVersion")))
        try:
            await self.client.update(body)
        except NotFound:
            await self.client.create(want)

    def desired_slices(self, svc: Obj, groups: dict[tuple, list[Obj]]) -> dict[str, Obj]:
        m = P.meta(svc)
        out: dict[str, Obj] = {}
        # no endpoints at all still gets one empty slice, as Kubernetes' placeholder
        for ports, pods in (groups or {(): []}).items():
            digest = hashlib.sha1(repr(ports).encode()).hexdigest()
            base = f"{m['name'][:50]}-{''.join(P.NAME_ALPHABET[int(c, 16) % len(P.NAME_ALPHABET)] for c in digest[:5])}"
            for i in range(0, max(1, len(pods)), MAX_ENDPOINTS_PER_SLICE):
                chunk = pods[i:i + MAX_ENDPOINTS_PER_SLICE]
                name = base if i == 0 else f"{base}-{i // MAX_ENDPOINTS_PER_SLICE}"
                endpoints = []
                for pod in chunk:
                    terminating = P.is_terminating(pod)
                    ready = P.is_ready(pod)
                    ep: dict[str, Any] = {"addresses": [pod["status"]["podIP"]],
                                          "conditions": {"ready": ready and not terminating, "serving": ready, "terminating": terminating},
                                          "targetRef": _target_ref(pod)}
                    if (pod.get("spec") or {}).get("nodeName"):
                        ep["nodeName"] = pod["spec"]["nodeName"]
                    endpoints.append(ep)
                out[name] = {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                    "metadata": {"name": name, "namespace": m.get("namespace"),
                                 "labels": {SERVICE_NAME_LABEL: m["name"], MANAGED_BY_LABEL: MANAGED_BY},
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": m["name"], "uid": m.get("uid"),
                                                      "controller": True, "blockOwnerDeletion": True}]},
                    "endpoints": endpoints,
                    "ports": _port_dicts(ports, endpoints_style=False),
                }
        return out

    async def sync_slices(self, svc: Obj, groups: dict[tuple, list[Obj]]) -> None:
        m = P.meta(svc)
        want = self.desired_slices(svc, groups)
        have = {P.meta(s)["name"]: s for s in self.slices.by_index("service", f"{m.get('namespace')}/{m['name']}")}
        for name, body in want.items():
            current = have.get(name)
            if current is None:
                try:
                    await self.client.create(body)
                except AlreadyExists:
                    current = await self.client.get("endpointslices", name, namespace=m.get("namespace"))
                else:
                    continue
            if (current.get("endpoints") or []) == body["endpoints"] and (current.get("ports") or []) == body["ports"]:
                continue
            try:
                await self.client.update(dict(body, metadata=dict(body["metadata"], resourceVersion=P.meta(current).get("resourceVersion"))))
            except NotFound:
                await self.client.create(body)
        for name, stale in have.items():
            if name not in want:
                try:
                    await self.client.delete("endpointslices", name, namespace=m.get("namespace"),
                                             preconditions={"uid": P.meta(stale).get("uid")})
                except (NotFound, Conflict):
                    pass
