"""Node IPAM: one pod CIDR per node, carved from the cluster CIDR.

Each Node without ``spec.podCIDR`` gets the lowest free ``/node_cidr_mask_size`` (default /24)
of ``cluster_cidr`` (default 10.244.0.0/16), written once into ``spec.podCIDR`` and
``spec.podCIDRs`` — never changed afterwards (Kubernetes' range allocator). The set of used
ranges is rebuilt from the node cache on every reconcile, plus the ranges this controller handed
out whose node updates it has not seen yet, so a fast burst of new nodes never gets duplicates;
a deleted node's range is free again as soon as the node leaves the cache. A node whose CIDR lies
outside the cluster CIDR is left alone (someone else allocated it).
"""

from __future__ import annotations

import ipaddress
import logging

from clusterctl.client.controller import Controller, EventRecorder
from clusterctl.client.errors import NotFound, PermanentError
from clusterctl.client.rest import ApiClient
from clusterctl.controllers import pods as P
from clusterctl.controllers.shared import SharedInformers

log = logging.getLogger(__name__)


class NodeIpamController(Controller):
    name = "node-ipam-controller"

    def __init__(self, client: ApiClient, informers: SharedInformers, *, cluster_cidr: str = "10.244.0.0/16", mask_size: int = 24) -> None:
        super().__init__(client, workers=1)  # one worker: allocation decisions are serialised
        self.cluster = ipaddress.ip_network(cluster_cidr)
        if mask_size < self.cluster.prefixlen:
            raise ValueError(f"node CIDR mask /{mask_size} is larger than the cluster CIDR {cluster_cidr}")
        self.mask_size = mask_size
        self.nodes = informers.get("nodes")
        self.events = EventRecorder(client, component=self.name)
        self.pending: dict[str, str] = {}  # node → CIDR written but not yet seen in the cache
        self.watch(self.nodes)

    def used(self) -> set[str]:
        used = {(n.get("spec") or {}).get("podCIDR") for n in self.nodes.list()}
        used.update(self.pending.values())
        used.discard(None)
        return used  # type: ignore[return-value]

    def next_free(self) -> str | None:
        used = self.used()
        for subnet in self.cluster.subnets(new_prefix=self.mask_size):
            if str(subnet) not in used:
                return str(subnet)
        return None

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None:
            self.pending.pop(key, None)
            return
        if (node.get("spec") or {}).get("podCIDR"):
            self.pending.pop(key, None)
            return
        if key in self.pending:
            return  # written already; the cache will catch up
        cidr = self.next_free()
        if cidr is None:
            await self.events.record(node, "Warning", "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
            raise PermanentError(f"no pod CIDR left in {self.cluster} for node {key}")
        patch = {"metadata": {"resourceVersion": P.meta(node).get("resourceVersion")}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
        try:
            await self.client.patch("nodes", key, patch)
        except NotFound:
            return
        self.pending[key] = cidr
        log.info("node %s: pod CIDR %s", key, cidr)
