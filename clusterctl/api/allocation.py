"""Service ClusterIP and NodePort allocation, done by the API server as in Kubernetes.

Kubernetes allocates a Service's ``clusterIP`` (from the service CIDR) and its ``nodePort``s (from
the node-port range) synchronously while creating it, so ``kubectl get svc`` shows them at once.
We do the same: the set of used addresses/ports is read from the stored Services under one lock
(this process is the only writer of Services for a tinydb store; with several API servers on one
etcd a collision is caught by the per-address reservation key). The first address of the CIDR
belongs to the ``kubernetes`` Service in ``default``.

As in Kubernetes (KEP-3070), the bottom of the CIDR — min(max(16, size/16), 256) addresses — is a
band for addresses people pick themselves (the cluster DNS is conventionally ``.10``): a Service
that asks for no address gets one from above the band, and from the band only when the rest is full.
"""

from __future__ import annotations

import ipaddress
import random

from clusterctl.api import errors
from clusterctl.api.context import ApiContext
from clusterctl.api.errors import FieldError


def _service_info(ctx: ApiContext):
    return ctx.registry.by_kind("", "Service")


async def _used(ctx: ApiContext) -> tuple[set[str], set[int]]:
    info = _service_info(ctx)
    result = await ctx.store.list(info.prefix())
    ips: set[str] = set()
    ports: set[int] = set()
    for item in result.items:
        spec = item.value.get("spec") or {}
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            ips.add(spec["clusterIP"])
        for p in spec.get("ports") or []:
            if isinstance(p, dict) and isinstance(p.get("nodePort"), int):
                ports.add(p["nodePort"])
    return ips, ports


def _network(ctx: ApiContext) -> ipaddress.IPv4Network:
    cidr = ctx.config.service_cidr if ctx.config else "10.96.0.0/16"
    return ipaddress.ip_network(cidr, strict=False)


def _node_port_range(ctx: ApiContext) -> tuple[int, int]:
    return ctx.config.node_ports if ctx.config else (30000, 32767)


def kubernetes_service_ip(ctx: ApiContext) -> str:
    return str(_network(ctx).network_address + 1)


def static_band(net: ipaddress.IPv4Network) -> int:
    """How many addresses at the bottom of ``net`` are kept for Services that name their own."""
    return min(max(16, net.num_addresses // 16), 256)


def _free_cluster_ip(net: ipaddress.IPv4Network, used: set[str]) -> str | None:
    """A free address: random above the static band, else the lowest free one above it, else the
    lowest free one in the band (never the network address, ``.1`` or the broadcast address)."""
    first, last = int(net.network_address) + 2, int(net.broadcast_address) - 1
    upper = max(first, int(net.network_address) + static_band(net))
    if upper <= last:
        for _ in range(64):
            candidate = str(ipaddress.IPv4Address(random.randint(upper, last)))
            if candidate not in used:
                return candidate
    for start, end in ((upper, last), (first, upper - 1)):
        for n in range(start, end + 1):
            if str(ipaddress.IPv4Address(n)) not in used:
                return str(ipaddress.IPv4Address(n))
    return None


async def allocate_service(ctx: ApiContext, svc: dict, old: dict | None, *, dry_run: bool = False) -> None:
    """Fill ``spec.clusterIP(s)`` and node ports of a new Service in place; 422 on a taken or bad value."""
    spec = svc.setdefault("spec", {})
    name = (svc.get("metadata") or {}).get("name", "")
    stype = spec.get("type", "ClusterIP")
    async with ctx.lock("service-allocation"):
        used_ips, used_ports = await _used(ctx)
        if stype != "ExternalName":
            ip = spec.get("clusterIP")
            net = _network(ctx)
            if ip in (None, ""):
                ip = _free_cluster_ip(net, used_ips)
                if ip is None:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        "spec.clusterIPs", None, "failed to allocate IP: range is full")])
            elif ip != "None":
                try:
                    addr = ipaddress.ip_address(ip)
                except ValueError:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        "spec.clusterIPs[0]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]) from None
                if addr not in net:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                        f"valid range. The range of valid IPs is {net}")])
                if ip in used_ips:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        "spec.clusterIPs", [ip], f"failed to allocate IP {ip}: provided IP is already allocated")])
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        if stype in ("NodePort", "LoadBalancer"):
            lo, hi = _node_port_range(ctx)
            for i, p in enumerate(spec.get("ports") or []):
                if not isinstance(p, dict):
                    continue
                np_ = p.get("nodePort")
                if np_ is None:
                    free = [n for n in range(lo, hi + 1) if n not in used_ports]
                    if not free:
                        raise errors.invalid("Service", name, "", [FieldError.invalid(
                            f"spec.ports[{i}].nodePort", None, "failed to allocate port: range is full")])
                    np_ = random.choice(free)
                elif not lo <= np_ <= hi:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        f"spec.ports[{i}].nodePort", np_, f"provided port is not in the valid range. The range of "
                        f"valid ports is {lo}-{hi}")])
                elif np_ in used_ports:
                    raise errors.invalid("Service", name, "", [FieldError.invalid(
                        f"spec.ports[{i}].nodePort", np_, "provided port is already allocated")])
                p["nodePort"] = np_
                used_ports.add(np_)
