"""Everything network a node agent runs beside its pods, behind one object.

``NodeNetwork`` owns the node's ``BridgeNetwork`` (the ``PodNetwork`` the pod workers use), keeps
the host-gw routes in step with the Node list (a Node informer), learns the node's pod CIDR
from its config or from ``spec.podCIDR`` (set by the control plane's IPAM), runs the
``ServiceProxy`` and, when ``cluster_dns`` is configured, the cluster DNS on that address. The agent wires it as::

    net = NodeNetwork(config, client)
    agent = Agent(config, client=client, network=net.pods)
    tasks: agent.run(), net.run();  on stop with pods stopped: await net.close()
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from clusterctl.client.informer import Informer
from clusterctl.client.rest import ApiClient
from node_runtime.dns.server import ClusterDNS
from node_runtime.network.bridge import DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR, BridgeNetwork
from node_runtime.network.iproute import NetworkError
from node_runtime.network.routes import node_pod_cidr
from node_runtime.proxy.forwarder import DEFAULT_MODE
from node_runtime.proxy.service_proxy import ServiceProxy

log = logging.getLogger(__name__)


class NodeNetwork:
    def __init__(self, config, client: ApiClient, *, cluster_cidr: str = DEFAULT_CLUSTER_CIDR,
                 service_cidr: str = DEFAULT_SERVICE_CIDR, proxy: bool = True,
                 dns_upstream: tuple[str, int] | None = None, proxy_mode: str | None = None):
        self.config = config
        self.client = client
        self.pods = BridgeNetwork(config.node_name, config.address, Path(config.data_dir) / "network",
                                  pod_cidr=config.pod_cidr, cluster_cidr=cluster_cidr, service_cidr=service_cidr)
        dns_ip = getattr(config, "cluster_dns", None)
        # how the proxy moves bytes (forwarder.py): the compiled pump ("cpump", the Python splice pump
        # where it cannot be built) unless the caller or the config says "splice"/"threads"/"asyncio"
        proxy_mode = proxy_mode or getattr(config, "proxy_mode", None) or DEFAULT_MODE
        self.proxy = ServiceProxy(client, config.node_name, [config.address],
                                  extra_cluster_ips={dns_ip} if dns_ip else None, mode=proxy_mode) if proxy else None
        self.dns = ClusterDNS(getattr(config, "cluster_domain", "cluster.local"), upstream=dns_upstream) if dns_ip else None
        self.nodes = Informer(client, "nodes")
        self._changed = asyncio.Event()
        self.nodes.add_handler(on_add=lambda _o: self._changed.set(), on_update=lambda _o, _n: self._changed.set(),
                               on_delete=lambda _o: self._changed.set())

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.nodes.run(), name="network nodes")]
        serving = False
        try:
            await self.nodes.wait_for_sync()
            while True:
                self._changed.clear()
                await self._sync()
                if not serving:
                    # NodePorts open only once the routes to other nodes' pods exist: before that
                    # the proxy would accept connections it cannot forward (an agent restarted
                    # during an upgrade reset clients' connections in that window)
                    serving = True
                    if self.proxy is not None:
                        tasks.append(asyncio.create_task(self.proxy.run(), name="service proxy"))
                    if self.dns is not None:
                        tasks.append(asyncio.create_task(self._serve_dns(), name="cluster dns"))
                await self._changed.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve_dns(self) -> None:
        """Answer on the cluster DNS address (on this node's ClusterIP link) once the proxy put it there."""
        assert self.dns is not None and self.proxy is not None
        await self.proxy.synced.wait()
        await self.dns.start(self.config.cluster_dns, 53)
        try:
            await self.dns.run(self.client)
        finally:
            self.dns.close()

    async def _sync(self) -> None:
        nodes = self.nodes.list()
        me = next((n for n in nodes if n["metadata"]["name"] == self.config.node_name), None)
        try:
            if self.pods.ipam is None:
                await self.pods.start(self.config.pod_cidr or (node_pod_cidr(me) if me else None))
            await self.pods.sync_routes(nodes)
        except NetworkError as exc:
            log.error("node %s: pod network: %s", self.config.node_name, exc)

    async def close(self) -> None:
        if self.proxy is not None:
            await self.proxy.close()
        await self.pods.close()
