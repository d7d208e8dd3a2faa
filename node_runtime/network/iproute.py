"""Running ``ip`` (iproute2): one place that turns its failures into ``NetworkError``s.

Every change to links, addresses and routes goes through ``ip`` rather than netlink sockets:
it is what an operator reads and types, it exists on every host, and ``ip -batch`` makes a
pod's whole setup a single process. ``-n NETNS`` runs the same commands inside a pod's namespace.
"""

from __future__ import annotations

import asyncio
import json
import socket

from node_runtime.network import NetworkError

__all__ = ["NetworkError", "ip", "ip_batch", "ip_json", "link_exists"]


async def ip(*args: str, netns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    argv = ["ip"] + (["-n", netns] if netns else []) + list(args)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
    if check and proc.returncode != 0:
        where = f" in netns {netns}" if netns else ""
        raise NetworkError(f"`{' '.join(argv)}` failed{where}: {err.decode(errors='replace').strip() or proc.returncode}")
    return out.decode(errors="replace")


async def ip_batch(lines: list[str], *, netns: str | None = None, force: bool = False) -> None:
    """Run many ``ip`` commands in one process (``-force`` goes on past failing lines)."""
    if lines:
        await ip(*(["-force"] if force else []), "-batch", "-", netns=netns, stdin="\n".join(lines) + "\n", check=not force)


async def ip_json(*args: str, netns: str | None = None) -> list[dict]:
    out = await ip("-j", *args, netns=netns)
    return json.loads(out) if out.strip() else []


async def link_exists(name: str, *, netns: str | None = None) -> bool:
    if netns is None:           # our own namespace: ask the kernel, no process
        try:
            socket.if_nametoindex(name)
            return True
        except OSError:
            return False
    out = await ip("link", "show", "dev", name, netns=netns, check=False)
    return bool(out.strip())
