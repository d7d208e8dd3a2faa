"""The real pod network: a bridge per node, a veth per pod, an address from the node's pod CIDR.

Layout on a node (all names derived from the node name, so several agents in one namespace
never collide): bridge ``cc<hash8>`` holding the first address of the pod CIDR (the pods'
gateway); per pod a namespace ``clusterctl-<node>-<uid8>`` whose ``eth0`` is one end of a veth
whose other end ``vc<hash11>`` is a port of the bridge; in the pod, a default route via the
gateway. Routes to other nodes' pods and the guard routes live in ``routes.HostRoutes``.

``setup`` is idempotent (an agent restart re-runs it for adopted pods and gets the same
address back from ``PodIPAM``); ``teardown`` deletes the namespace (which takes the veth with
it) and releases the address; ``close`` removes the bridge and our routes once no pod is left.

The bridge gets a fixed MAC address (``bridge_mac``). Left to itself, a Linux bridge takes the
lowest MAC of its ports and changes it when that port goes: every pod that had resolved its
gateway then sends to a MAC nobody has, and its answers vanish until its ARP entry expires (5 s
and more). In rollouts that was a pod acknowledging a request and never answering it
(tests/network/test_rollout_lab.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
from pathlib import Path

from node_runtime.network import NETNS_DIR, PodAddress, create_netns, delete_netns
from node_runtime.network.iproute import NetworkError, ip, ip_batch, link_exists
from node_runtime.network.ipam import PodIPAM
from node_runtime.network.routes import HostRoutes


def bridge_mac(bridge: str) -> str:
    """A stable, locally administered unicast MAC for the bridge, derived from its name."""
    digest = hashlib.sha1(f"mac:{bridge}".encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x02, *digest[:5]))


log = logging.getLogger(__name__)

DEFAULT_CLUSTER_CIDR = "10.244.0.0/16"
DEFAULT_SERVICE_CIDR = "10.96.0.0/12"


def _hash(text: str, n: int) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def bridge_name(node_name: str) -> str:
    return f"cc{_hash(node_name, 8)}"


def _exempt_unreachable_from_icmp_ratelimit() -> None:
    """Let every "destination unreachable" through the node's ICMP rate limit (this namespace only).

    A pod connecting to a cluster address nobody serves hits our ``unreachable`` guard and learns
    it from an ICMP error; rate-limited (1/s per pod by default) its next attempts would hang
    for seconds instead of failing at once.
    """
    path = Path("/proc/sys/net/ipv4/icmp_ratemask")
    try:
        mask = int(path.read_text())
        if mask & (1 << 3):
            path.write_text(f"{mask & ~(1 << 3)}\n")
    except (OSError, ValueError) as exc:
        log.warning("cannot exempt ICMP unreachable from the rate limit: %s", exc)


class BridgeNetwork:
    """``PodNetwork`` with a bridge, veths and host-gw routes (see the module docstring)."""

    def __init__(self, node_name: str, node_ip: str, state_dir: Path, *, pod_cidr: str | None = None,
                 cluster_cidr: str = DEFAULT_CLUSTER_CIDR, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 ip_forward: bool = True, cidr_wait: float = 5.0, linger: float = 3.0):
        self.node_name = node_name
        self.node_ip = node_ip
        self.state_dir = Path(state_dir)
        self.cluster_cidr = cluster_cidr
        self.service_cidr = service_cidr
        self.ip_forward = ip_forward
        self.cidr_wait = cidr_wait
        self.linger = linger
        self._lingering: dict[str, asyncio.Task] = {}
        self.bridge = bridge_name(node_name)
        self.routes = HostRoutes(node_name, guard_cidrs=[cluster_cidr, service_cidr], own_devices={self.bridge})
        self.ipam: PodIPAM | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pending_cidr = pod_cidr

    # ------------------------------------------------------------------ node level

    async def start(self, pod_cidr: str | None = None) -> None:
        """Check CIDRs, create the bridge and guard routes; needs the node's pod CIDR."""
        cidr = pod_cidr or self._pending_cidr
        if not cidr:
            return
        async with self._lock:
            if self.ipam is not None:
                if ipaddress.ip_network(cidr, strict=False) != self.ipam.network:
                    log.error("node %s: pod CIDR changed from %s to %s; keeping the old one until the agent restarts",
                              self.node_name, self.ipam.network, cidr)
                return
            net = ipaddress.ip_network(cidr, strict=False)
            if not net.subnet_of(ipaddress.ip_network(self.cluster_cidr)):
                raise NetworkError(f"node {self.node_name}: pod CIDR {cidr} is not inside the cluster CIDR {self.cluster_cidr}")
            await self.routes.check_overlap()
            ipam = PodIPAM(cidr, self.state_dir / "ipam.json")
            lines = [] if await link_exists(self.bridge) else [f"link add {self.bridge} type bridge"]
            lines += [f"link set {self.bridge} address {bridge_mac(self.bridge)}",    # fixed: see the module doc
                      f"addr replace {ipam.gateway}/{ipam.prefixlen} dev {self.bridge}", f"link set {self.bridge} up"]
            await ip_batch(lines)
            await self.routes.ensure_guards()
            if self.ip_forward:
                Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
            _exempt_unreachable_from_icmp_ratelimit()
            self.ipam = ipam
            self._ready.set()
            log.info("node %s: pod network %s on bridge %s", self.node_name, cidr, self.bridge)

    async def sync_routes(self, nodes: list[dict]) -> dict[str, str]:
        return await self.routes.sync(nodes)

    async def close(self, *, force: bool = False) -> None:
        """Remove bridge and routes if no pod holds an address (or ``force``)."""
        lingering = list(self._lingering.values())
        for task in lingering:
            task.cancel()
        await asyncio.gather(*lingering, return_exceptions=True)
        if self.ipam is not None and self.ipam.leases and not force:
            log.info("node %s: %d pods keep their network; bridge kept", self.node_name, len(self.ipam.leases))
            return
        await self.routes.remove_all()
        if await link_exists(self.bridge):
            await ip("link", "del", self.bridge)
        self.ipam = None
        self._ready.clear()

    # ------------------------------------------------------------------ pods

    def netns_name(self, pod: dict) -> str:
        uid = (pod.get("metadata") or {}).get("uid", "").replace("-", "")
        return f"clusterctl-{self.node_name}-{uid[:8]}"[:60]

    def veth_name(self, pod: dict) -> str:
        return f"vc{_hash(self.node_name + (pod.get('metadata') or {}).get('uid', ''), 11)}"

    async def setup(self, pod: dict) -> PodAddress:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return PodAddress(None, self.node_ip)
        if self.ipam is None:
            await self.start()
        try:
            await asyncio.wait_for(self._ready.wait(), self.cidr_wait)
        except TimeoutError:
            raise NetworkError(f"node {self.node_name} has no pod CIDR yet (spec.podCIDR unset)") from None
        assert self.ipam is not None
        uid = pod["metadata"]["uid"]
        ns, veth = self.netns_name(pod), self.veth_name(pod)
        addr = self.ipam.allocate(uid)
        try:
            if not (NETNS_DIR / ns).exists():
                await asyncio.to_thread(create_netns, ns)       # no ip(8) process: pod start latency
            if not await link_exists(veth):
                await ip_batch([f"link add {veth} type veth peer name eth0 netns {ns}",
                                f"link set {veth} master {self.bridge} up"])
            await ip_batch([f"addr replace {addr}/{self.ipam.prefixlen} dev eth0", "link set eth0 up",
                            f"route replace default via {self.ipam.gateway} dev eth0"], netns=ns)
        except NetworkError:
            await self._remove(pod)
            raise
        return PodAddress(str(NETNS_DIR / ns), addr)

    async def teardown(self, pod: dict) -> None:
        """Remove the pod's namespace ``linger`` seconds (default 3) from now, address leased till then.

        The pod's processes are gone already; for a moment its namespace keeps answering: the
        FIN/RST of sockets its processes left, and RSTs to late packets, still get out. Deleted
        at once, the veth would take them along and a proxy's open connection to the pod would
        hang on silence (ARP for a vanished IP) instead of failing at once.
        """
        if (pod.get("spec") or {}).get("hostNetwork"):
            return
        uid = pod["metadata"]["uid"]
        if self.linger <= 0:
            await self._remove(pod)
            return
        if uid not in self._lingering:
            task = asyncio.get_running_loop().create_task(self._remove_later(pod))
            self._lingering[uid] = task
            task.add_done_callback(lambda _t, u=uid: self._lingering.pop(u, None))

    async def _remove_later(self, pod: dict) -> None:
        try:
            await asyncio.sleep(self.linger)
        finally:   # cancelled (agent stopping): remove now, shielded so nothing is left half-done
            await asyncio.shield(self._remove(pod))

    async def _remove(self, pod: dict) -> None:
        ns, veth = self.netns_name(pod), self.veth_name(pod)
        if (NETNS_DIR / ns).exists():
            await asyncio.to_thread(delete_netns, ns)
        if await link_exists(veth):
            await ip("link", "del", veth, check=False)
        if self.ipam is None and (self.state_dir / "ipam.json").exists() and self._pending_cidr:
            await self.start()
        if self.ipam is not None:
            self.ipam.release(pod["metadata"]["uid"])
