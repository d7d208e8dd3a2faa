"""ClusterIPs as local addresses: a dummy interface in the node's namespace holds each as a /32.

With the address local, the kernel delivers connections to it to our listener from the node
itself and from every pod (their default route leads to the node); an address we don't hold
falls to the ``unreachable`` guard of the service CIDR and fails at once.

Where the kernel has no ``dummy`` link type (no module, no way to load it), the addresses go on
``lo`` under the label ``lo:cs<hash>`` instead: delivery is the same, and the label still lets us
find and remove exactly ours.
"""

from __future__ import annotations

import hashlib

from node_runtime.network.iproute import NetworkError, ip, ip_batch, ip_json, link_exists


def dummy_name(node_name: str) -> str:
    return f"cs{hashlib.sha1(node_name.encode()).hexdigest()[:8]}"


class ClusterIPAddresses:
    def __init__(self, node_name: str):
        self.link = dummy_name(node_name)
        self.dev = self.link
        self.label = ""
        self.current: set[str] = set()
        self._ready = False

    async def _ensure_link(self) -> None:
        if self._ready:
            return
        if not await link_exists(self.link):
            try:
                await ip_batch([f"link add {self.link} type dummy", f"link set {self.link} up"])
            except NetworkError as exc:
                if "Unknown device type" not in str(exc):
                    raise
                self.dev, self.label = "lo", f"lo:{self.link}"
        data = await ip_json("addr", "show", "dev", self.dev)
        self.current = {a["local"] for d in data for a in d.get("addr_info") or []
                        if a.get("family") == "inet" and (not self.label or a.get("label") == self.label)}
        self._ready = True

    async def sync(self, wanted: set[str]) -> None:
        await self._ensure_link()
        label = f" label {self.label}" if self.label else ""
        lines = [f"addr add {a}/32 dev {self.dev}{label}" for a in sorted(wanted - self.current)]
        lines += [f"addr del {a}/32 dev {self.dev}" for a in sorted(self.current - wanted)]
        await ip_batch(lines, force=True)
        self.current = set(wanted)

    async def add(self, addrs: set[str]) -> None:
        await self.sync(self.current | addrs)

    async def remove_link(self) -> None:
        if self.label:
            await self.sync(set())
        elif await link_exists(self.link):
            await ip("link", "del", self.link)
        self.current = set()
        self._ready = False
