"""The cluster zone from Services and Pods (pure): name -> addresses.

``<svc>.<ns>.svc.<domain>`` is the ClusterIP; a headless Service (``clusterIP: None``) answers
with the ready addresses of its Endpoints instead (the same ones the proxy uses). ExternalName and
Services without an address are absent (NXDOMAIN).
"""

from __future__ import annotations

from node_runtime.proxy.table import endpoint_addresses


def zone(services: list[dict], endpoints: list[dict], domain: str) -> dict[str, list[str]]:
    domain = domain.strip(".").lower()
    by_key = {f"{(e.get('metadata') or {}).get('namespace', 'default')}/{(e.get('metadata') or {}).get('name')}": e for e in endpoints}
    out: dict[str, list[str]] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ns, name = meta.get("namespace", "default"), meta.get("name", "")
        fqdn = f"{name}.{ns}.svc.{domain}".lower()
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            out[fqdn] = [ip]
        elif ip == "None":
            out[fqdn] = endpoint_addresses(by_key.get(f"{ns}/{name}"))
    return out
