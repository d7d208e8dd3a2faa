"""The cluster zone from Services and Pods (pure): name -> addresses.

``<svc>.<ns>.svc.<domain>`` is the ClusterIP; a headless Service (``clusterIP: None``) answers
with the IPs of its ready pods instead (the same readiness the proxy uses). ExternalName and
Services without an address are absent (NXDOMAIN).
"""

from __future__ import annotations

from node_runtime.proxy.table import ready_pods_by_namespace, selector_matches


def zone(services: list[dict], pods: list[dict], domain: str) -> dict[str, list[str]]:
    domain = domain.strip(".").lower()
    ready = ready_pods_by_namespace(pods)
    out: dict[str, list[str]] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        fqdn = f"{name}.{ns}.svc.{domain}".lower()
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            out[fqdn] = [ip]
        elif ip == "None" and spec.get("selector"):
            ips = sorted({p["status"]["podIP"] for p in ready.get(ns, [])
                          if selector_matches(spec["selector"], (p.get("metadata") or {}).get("labels") or {})})
            out[fqdn] = ips
    return out
