"""The pod network seam: how a pod gets its network namespace and IP.

``PodNetwork`` is the one interface the pod lifecycle uses: ``setup(pod) -> PodAddress``
(netns path + pod IP) before any container starts, ``teardown(pod)`` after the last one stopped.
The real implementation (bridge, veth, per-node pod CIDR, host-gw routes) belongs to the
networking issue and only has to implement this protocol. Until then ``LoopbackNetwork`` gives
each pod a private namespace with loopback only (``ip netns add clusterctl-<node>-<uid8>``),
and reports the node's IP as the pod IP (the pod is reachable from the node via ``ip netns exec``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from node_runtime.errors import NodeRuntimeError

NETNS_DIR = Path("/run/netns")


class NetworkError(NodeRuntimeError):
    """A pod's network namespace could not be created or removed."""


@dataclass(frozen=True)
class PodAddress:
    netns_path: str | None    # None = host network
    pod_ip: str
    probe_host: str | None = None   # where probes connect from inside the netns (None = pod_ip)


class PodNetwork(Protocol):
    async def setup(self, pod: dict) -> PodAddress: ...
    async def teardown(self, pod: dict) -> None: ...
    def netns_name(self, pod: dict) -> str: ...


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


class LoopbackNetwork:
    """Placeholder pod network: a netns per pod with only ``lo`` up; pod IP = node IP."""

    def __init__(self, node_name: str, node_ip: str):
        self.node_name = node_name
        self.node_ip = node_ip

    def netns_name(self, pod: dict) -> str:
        uid = (pod.get("metadata") or {}).get("uid", "").replace("-", "")
        return f"clusterctl-{self.node_name}-{uid[:8]}"[:60]

    async def setup(self, pod: dict) -> PodAddress:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return PodAddress(None, self.node_ip)
        name = self.netns_name(pod)
        path = NETNS_DIR / name
        if not path.exists():
            rc, out = await _ip("netns", "add", name)
            if rc != 0 and "exists" not in out:
                raise NetworkError(f"cannot create network namespace {name}: {out}")
            rc, out = await _ip("-n", name, "link", "set", "lo", "up")
            if rc != 0:
                raise NetworkError(f"cannot bring up loopback in {name}: {out}")
        return PodAddress(str(path), self.node_ip, probe_host="127.0.0.1")

    async def teardown(self, pod: dict) -> None:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return
        name = self.netns_name(pod)
        if (NETNS_DIR / name).exists():
            rc, out = await _ip("netns", "delete", name)
            if rc != 0 and os.path.exists(NETNS_DIR / name):
                raise NetworkError(f"cannot delete network namespace {name}: {out}")
