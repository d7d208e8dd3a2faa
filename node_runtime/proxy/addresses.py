"""ClusterIPs as local addresses: a dummy interface in the node's namespace holds each as a /32.

With the address local, the kernel delivers connections to it to our listener from the node
itself and from every pod (their default route leads to the node); an address we don't hold
falls to the ``unreachable`` guard of the service CIDR and fails at once.
"""

from __future__ import annotations

import hashlib

from node_runtime.network.iproute import ip, ip_batch, ip_json, link_exists


def dummy_name(node_name: str) -> str:
    return f"cs{hashlib.sha1(node_name.encode()).hexdigest()[:8]}"


class ClusterIPAddresses:
    def __init__(self, node_name: str):
        self.link = dummy_name(node_name)
        self.current: set[str] = set()

    async def _ensure_link(self) -> None:
        if not await link_exists(self.link):
            await ip_batch([f"link add {self.link} type dummy", f"link set {self.link} up"])
            self.current = set()
        elif not self.current:
            data = await ip_json("addr", "show", "dev", self.link)
            self.current = {a["local"] for d in data for a in d.get("addr_info") or [] if a.get("family") == "inet"}

    async def sync(self, wanted: set[str]) -> None:
        await self._ensure_link()
        lines = [f"addr add {a}/32 dev {self.link}" for a in sorted(wanted - self.current)]
        lines += [f"addr del {a}/32 dev {self.link}" for a in sorted(self.current - wanted)]
        await ip_batch(lines, force=True)
        self.current = set(wanted)

    async def add(self, addrs: set[str]) -> None:
        await self.sync(self.current | addrs)

    async def remove_link(self) -> None:
        if await link_exists(self.link):
            await ip("link", "del", self.link)
        self.current = set()
