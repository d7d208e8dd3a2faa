"""The node's routes for the cluster: host-gw routes to other nodes' pod CIDRs, and the
``unreachable`` guards that keep cluster traffic from ever reaching a default gateway.

Host-gw: a pod CIDR of node B is routed ``via`` B's InternalIP on node A, which works on any
shared L2 segment (the lab bridge, a LAN, a Vagrant private network) without encapsulation.
Every route we add carries protocol ``ROUTE_PROTO`` so we can find, diff and remove exactly
ours. The guards are ``unreachable`` routes for the whole pod and service CIDRs: the more
specific routes (our bridge, other nodes' CIDRs, ClusterIPs bound locally) win, anything else in
those ranges fails at once with EHOSTUNREACH instead of following a default route.

``check_overlap`` refuses cluster CIDRs that collide with a route the host already has (a LAN,
a VPN): the message names the route and the device so the operator can pick other CIDRs.
"""

from __future__ import annotations

import ipaddress
import logging

from node_runtime.network.iproute import NetworkError, ip_batch, ip_json

log = logging.getLogger(__name__)

ROUTE_PROTO = "76"          # our routes' protocol number (rtnetlink), an otherwise unused value


class CidrOverlap(NetworkError):
    """A cluster CIDR overlaps a route the host already has."""


def node_internal_ip(node: dict) -> str | None:
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") == "InternalIP":
            return a.get("address")
    return None


def node_pod_cidr(node: dict) -> str | None:
    spec = node.get("spec") or {}
    return spec.get("podCIDR") or next(iter(spec.get("podCIDRs") or []), None)


def desired_routes(nodes: list[dict], self_name: str, local_addresses: set[str] = frozenset()) -> dict[str, str]:
    """``{pod CIDR: via address}`` for every other node that has both (pure). A node whose
    address is one of ours shares this namespace (several agents on one machine): its bridge is
    already a local route, no gateway needed."""
    out: dict[str, str] = {}
    for node in nodes:
        if (node.get("metadata") or {}).get("name") == self_name:
            continue
        cidr, via = node_pod_cidr(node), node_internal_ip(node)
        if cidr and via and via not in local_addresses:
            out[str(ipaddress.ip_network(cidr, strict=False))] = via
    return out


_GUARD_TYPES = ("unreachable", "blackhole", "prohibit")


def _is_ours(route: dict, own_devices: set[str]) -> bool:
    return str(route.get("protocol")) == ROUTE_PROTO or route.get("dev") in own_devices


def find_overlaps(routes: list[dict], cidrs: list[str], own_devices: set[str]) -> list[str]:
    """Describe each host route (not ours, not default) that overlaps one of ``cidrs`` (pure)."""
    nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    found = []
    for r in routes:
        dst = r.get("dst")
        if not dst or dst == "default" or _is_ours(r, own_devices) or r.get("type") in _GUARD_TYPES:
            continue   # a guard (ours or the host's) is what we want, not a clash
        try:
            net = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if net.version != 4:
            continue
        for c in nets:
            if net.overlaps(c):
                where = f" dev {r['dev']}" if r.get("dev") else ""
                via = f" via {r['gateway']}" if r.get("gateway") else ""
                found.append(f"{c} overlaps the host route {dst}{via}{where}")
    return found


class HostRoutes:
    """Keeps this node's host-gw and guard routes (in the namespace the agent runs in)."""

    def __init__(self, node_name: str, *, guard_cidrs: list[str], own_devices: set[str]):
        self.node_name = node_name
        self.guard_cidrs = [str(ipaddress.ip_network(c, strict=False)) for c in guard_cidrs]
        self.own_devices = own_devices
        self.current: dict[str, str] = {}

    async def check_overlap(self) -> None:
        problems = find_overlaps(await ip_json("route", "show", "table", "main"), self.guard_cidrs, self.own_devices)
        if problems:
            raise CidrOverlap("refusing to set up the pod network: " + "; ".join(problems)
                              + " (choose pod/service CIDRs that are not in use on this host)")

    async def ensure_guards(self) -> None:
        """Add an ``unreachable`` route per cluster CIDR unless the host already has a guard there."""
        existing = {r.get("dst") for r in await ip_json("route", "show", "table", "main") if r.get("type") in _GUARD_TYPES}
        await ip_batch([f"route add unreachable {c} proto {ROUTE_PROTO}" for c in self.guard_cidrs if c not in existing])

    async def sync(self, nodes: list[dict]) -> dict[str, str]:
        local = {a["local"] for link in await ip_json("addr", "show") for a in link.get("addr_info") or [] if a.get("local")}
        want = desired_routes(nodes, self.node_name, local)
        have = {r["dst"]: r.get("gateway", "") for r in await ip_json("route", "show", "proto", ROUTE_PROTO)
                if r.get("gateway") and r.get("dst")}
        lines = [f"route replace {cidr} via {via} proto {ROUTE_PROTO}" for cidr, via in want.items() if have.get(cidr) != via]
        lines += [f"route del {cidr} proto {ROUTE_PROTO}" for cidr in have if cidr not in want]
        if lines:
            log.info("pod routes: %s", "; ".join(lines))
            await ip_batch(lines, force=True)
        self.current = want
        return want

    async def remove_all(self) -> None:
        routes = await ip_json("route", "show", "proto", ROUTE_PROTO)
        lines = [f"route del {'unreachable ' if r.get('type') == 'unreachable' else ''}{r['dst']} proto {ROUTE_PROTO}"
                 for r in routes if r.get("dst")]
        await ip_batch(lines, force=True)
        self.current = {}
