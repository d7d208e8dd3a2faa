"""Container probes: exec, httpGet and tcpSocket, run the way kubelet runs them.

``check(probe, target)`` runs one probe: exec through the runtime's ``exec_argv`` (nsenter into
the container), httpGet and tcpSocket from a socket created *inside the pod's network namespace*
(a worker thread ``setns``es, makes the socket and switches back — no process per probe).
``ProbeWorker`` runs one probe on its schedule (initialDelaySeconds, periodSeconds,
timeoutSeconds, success/failureThreshold, all scaled by the agent's ``probe_scale``) and reports
each change of its result through a callback; the pod worker gates liveness and readiness on
startup and restarts containers on liveness failure.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import threading
from dataclasses import dataclass
from typing import Awaitable, Callable

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
CLONE_NEWNET = 0x40000000
_setns_lock = threading.Lock()


@dataclass
class ProbeTarget:
    netns_path: str | None
    host: str                                       # default host for httpGet/tcpSocket
    exec_argv: Callable[[list[str]], list[str]]     # argv -> host argv running it in the container
    ports: dict[str, int]                           # named container ports


def netns_socket(netns_path: str | None, family: int = socket.AF_INET) -> socket.socket:
    """A TCP socket that lives in ``netns_path`` (blocking call: run it in a thread)."""
    if not netns_path:
        return socket.socket(family, socket.SOCK_STREAM)
    own = os.open(f"/proc/self/task/{threading.get_native_id()}/ns/net", os.O_RDONLY)
    target = os.open(netns_path, os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns_path}")
        try:
            return socket.socket(family, socket.SOCK_STREAM)
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - would leave the thread astray
                os._exit(70)
    finally:
        os.close(own)
        os.close(target)


async def connect(netns_path: str | None, host: str, port: int, timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    sock = await asyncio.to_thread(netns_socket, netns_path)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


def _port(value, target: ProbeTarget) -> int:
    if isinstance(value, int) or str(value).isdigit():
        return int(value)
    if value in target.ports:
        return target.ports[value]
    raise ValueError(f"unknown named port {value!r}")


async def check(probe: dict, target: ProbeTarget, timeout: float) -> tuple[bool, str]:
    """Run the probe once: (success, message)."""
    try:
        if "exec" in probe:
            argv = target.exec_argv(list(probe["exec"].get("command") or []))
            proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                                                        stderr=asyncio.subprocess.STDOUT)
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), timeout)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
                return False, f"command timed out after {timeout:g}s"
            if proc.returncode == 0:
                return True, ""
            return False, f"command exited with {proc.returncode}: {out.decode(errors='replace').strip()[:200]}"
        if "httpGet" in probe:
            hg = probe["httpGet"]
            host = hg.get("host") or target.host
            port = _port(hg.get("port"), target)
            path = hg.get("path") or "/"
            reader, writer = await connect(target.netns_path, host, port, timeout)
            try:
                headers = "".join(f"{h['name']}: {h['value']}\r\n" for h in hg.get("httpHeaders") or [])
                writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n"
                             f"Connection: close\r\n{headers}\r\n".encode())
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), timeout)
            finally:
                writer.close()
            parts = line.decode(errors="replace").split()
            code = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
            if 200 <= code < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {code}"
        if "tcpSocket" in probe:
            ts = probe["tcpSocket"]
            _, writer = await connect(target.netns_path, ts.get("host") or target.host, _port(ts.get("port"), target), timeout)
            writer.close()
            return True, ""
        if "grpc" in probe:
            return False, "grpc probes are not supported by this node runtime"
    except asyncio.CancelledError:
        raise
    except asyncio.TimeoutError:
        return False, f"probe timed out after {timeout:g}s"
    except (OSError, ValueError) as exc:
        return False, str(exc)
    return False, "probe has no handler"


class ProbeWorker:
    """Runs one probe of one container until cancelled; calls ``on_result(ok, message)`` on changes
    (after success/failure thresholds are met)."""

    def __init__(self, kind: str, probe: dict, target: ProbeTarget, on_result: Callable[[bool, str], Awaitable[None] | None], *,
                 scale: float = 1.0, default_period: float = 10.0, default_timeout: float = 1.0):
        self.kind = kind
        self.probe = probe
        self.target = target
        self.on_result = on_result
        self.scale = scale
        self.period = float(probe.get("periodSeconds") or default_period) * scale
        self.initial_delay = float(probe.get("initialDelaySeconds") or 0) * scale
        self.timeout = max(float(probe.get("timeoutSeconds") or default_timeout) * min(1.0, max(scale, 0.5)), 0.2)
        self.success_threshold = int(probe.get("successThreshold") or 1)
        self.failure_threshold = int(probe.get("failureThreshold") or 3)
        self.result: bool | None = None

    async def run(self) -> None:
        await asyncio.sleep(self.initial_delay)
        successes = failures = 0
        while True:
            ok, message = await check(self.probe, self.target, self.timeout)
            if ok:
                successes, failures = successes + 1, 0
                if self.result is not True and successes >= self.success_threshold:
                    self.result = True
                    await _call(self.on_result, True, message)
            else:
                failures, successes = failures + 1, 0
                if self.result is not False and failures >= self.failure_threshold:
                    self.result = False
                    await _call(self.on_result, False, message)
            await asyncio.sleep(self.period)


async def _call(fn, *args):
    r = fn(*args)
    if asyncio.iscoroutine(r):
        await r
