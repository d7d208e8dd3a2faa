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
import ctypes
import fcntl
import os
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from node_runtime.errors import NodeRuntimeError

NETNS_DIR = Path("/run/netns")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
MNT_DETACH = 2
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
_dir_ready = False
_dir_lock = threading.Lock()


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


def _errno_text(what: str) -> str:
    err = ctypes.get_errno()
    return f"{what}: {os.strerror(err)}"


def _prepare_netns_dir() -> None:
    """Make /run/netns a shared mount point, as ``ip netns add`` does (once per process)."""
    global _dir_ready
    with _dir_lock:
        if _dir_ready:
            return
        NETNS_DIR.mkdir(parents=True, exist_ok=True)
        path = str(NETNS_DIR).encode()
        if _libc.mount(b"none", path, None, ctypes.c_ulong(MS_SHARED | MS_REC), None) != 0:
            if _libc.mount(path, path, b"none", ctypes.c_ulong(MS_BIND | MS_REC), None) != 0:
                raise NetworkError(_errno_text(f"bind-mounting {NETNS_DIR}"))
            if _libc.mount(b"none", path, None, ctypes.c_ulong(MS_SHARED | MS_REC), None) != 0:
                raise NetworkError(_errno_text(f"making {NETNS_DIR} shared"))
        _dir_ready = True


def create_netns(name: str) -> Path:
    """``ip netns add NAME`` + ``ip -n NAME link set lo up`` without a process: a worker thread
    unshares its network namespace, pins it with a bind mount, raises ``lo`` and switches back."""
    _prepare_netns_dir()
    path = NETNS_DIR / name
    if path.exists() and os.path.ismount(path):
        return path
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0) if not path.exists() else None
    if fd is not None:
        os.close(fd)
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise NetworkError(_errno_text(f"creating network namespace {name}"))
        try:
            src = f"/proc/self/task/{threading.get_native_id()}/ns/net".encode()
            if _libc.mount(src, str(path).encode(), b"none", ctypes.c_ulong(MS_BIND), None) != 0:
                raise NetworkError(_errno_text(f"pinning network namespace {name}"))
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                ifreq = struct.pack("16sH14s", b"lo", 0, b"")
                flags = struct.unpack("16sH14s", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
                fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - the thread would stay astray
                os._exit(70)
    except BaseException:
        _libc.umount2(str(path).encode(), MNT_DETACH)
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(own)
    return path


def delete_netns(name: str) -> None:
    """``ip netns delete NAME``."""
    path = NETNS_DIR / name
    if os.path.ismount(path) and _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        raise NetworkError(_errno_text(f"unmounting network namespace {name}"))
    path.unlink(missing_ok=True)


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
        try:
            path = await asyncio.to_thread(create_netns, name)
        except OSError as exc:
            raise NetworkError(f"cannot create network namespace {name}: {exc}") from exc
        return PodAddress(str(path), self.node_ip, probe_host="127.0.0.1")

    async def teardown(self, pod: dict) -> None:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return
        await asyncio.to_thread(delete_netns, self.netns_name(pod))
