"""The proxy's forwarding on loopback: real sockets, real backends, no mocks."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

pytestmark = pytest.mark.timeout(30)

from node_runtime.proxy.forwarder import Balancer, Forwarder
from node_runtime.proxy.table import Backend


async def backend(name: str):
    """A line server that answers every line with its name; returns (server, Backend)."""
    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(f"{name}:{line.decode().strip()}\n".encode())
                await writer.drain()
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, Backend("127.0.0.1", server.sockets[0].getsockname()[1])


def dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["splice", "threads", "asyncio"], autouse=True)
def mode(request):
    global MODE
    MODE = request.param
    return request.param


MODE = "splice"


async def frontend(backends, **kw) -> tuple[Forwarder, int]:
    fwd = Forwarder("test", backends, mode=MODE, **kw)
    await fwd.listen([("127.0.0.1", 0)])
    return fwd, fwd.bound[0][1]


async def ask(port: int, text: str = "hi") -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(text.encode() + b"\n")
    line = await asyncio.wait_for(r.readline(), 5)
    w.close()
    return line.decode().strip()


async def test_round_robin_and_retry_past_refusing_and_silent_backends():
    servers, backends = zip(*[await backend(n) for n in ("a", "b")])
    # a backend whose accept queue is full: its SYNs are dropped, so connecting just hangs
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(silent.getsockname())
        fillers.append(f)
    mute = Backend("127.0.0.1", silent.getsockname()[1])
    fwd, port = await frontend([Backend("127.0.0.1", dead_port()), backends[0], mute, backends[1]],
                               connect_timeout=0.3, attempts=4)
    t0 = time.monotonic()
    answers = [await ask(port, str(i)) for i in range(8)]
    assert sorted({a.split(":")[0] for a in answers}) == ["a", "b"]
    assert all(a.endswith(f":{i}") for i, a in enumerate(answers))
    assert fwd.stats["failed"] == 0 and fwd.stats["retries"] >= 4
    assert time.monotonic() - t0 < 8 * 0.3 + 2
    fwd.close()
    for s in servers:
        s.close()
    for f in fillers:
        f.close()
    silent.close()


async def test_no_ready_backend_resets_at_once():
    fwd, port = await frontend([])
    t0 = time.monotonic()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"x\n")
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        data = await asyncio.wait_for(r.readline(), 2)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
    assert time.monotonic() - t0 < 0.5 and fwd.stats["failed"] == 1
    fwd.close()


async def test_removed_backend_gets_no_new_connections_but_open_ones_finish():
    (sa, a), (sb, b) = await backend("a"), await backend("b")
    fwd, port = await frontend([a])
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"1\n")
    assert (await r.readline()).strip() == b"a:1"
    fwd.balancer.update([b], None)                     # a stops being ready
    assert {await ask(port) for _ in range(4)} == {"b:hi"}
    w.write(b"2\n")                                    # the open connection still reaches a
    assert (await r.readline()).strip() == b"a:2"
    w.close()
    fwd.close()
    sa.close()
    sb.close()


async def test_large_transfer_and_half_close_pass_through():
    received = asyncio.get_running_loop().create_future()

    async def sink(reader, writer):
        data = await reader.read()                     # until the client's EOF
        writer.write(str(len(data)).encode())
        await writer.drain()
        writer.close()
        received.set_result(len(data))
    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    fwd, port = await frontend([Backend("127.0.0.1", server.sockets[0].getsockname()[1])])
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"x" * (8 << 20))
    await w.drain()
    w.write_eof()
    assert await asyncio.wait_for(r.read(), 10) == str(8 << 20).encode()
    assert received.result() == 8 << 20
    w.close()
    fwd.close()
    server.close()


def test_client_ip_affinity_sticks_until_timeout_or_backend_leaves():
    now = [0.0]
    a, b, c = Backend("10.244.1.2", 80), Backend("10.244.1.3", 80), Backend("10.244.2.2", 80)
    bal = Balancer([a, b, c], affinity_timeout=10, clock=lambda: now[0])
    first = bal.candidates("192.0.2.1")[0]
    bal.chosen("192.0.2.1", first)
    assert all(bal.candidates("192.0.2.1")[0] == first for _ in range(5))
    assert len({bal.candidates("other")[0] for _ in range(3)}) == 3      # others still round-robin
    now[0] = 11
    assert len({bal.candidates("192.0.2.1")[0] for _ in range(3)}) == 3  # expired
    bal.chosen("192.0.2.1", a)
    bal.update([b, c], 10)                                               # a left: choose again
    assert bal.candidates("192.0.2.1")[0] in (b, c)
