"""The proxy's forwarding on loopback: real sockets, real backends, no mocks."""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

pytestmark = pytest.mark.timeout(120)  # per test; a stall fails on its own 20-30 s waits first

from node_runtime.proxy.compiled_pump import close_compiled_pump, compiled_pump
from node_runtime.proxy.forwarder import Balancer, Forwarder, shared_pump
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


@pytest.fixture(params=["splice", "cpump", "threads", "asyncio"], autouse=True)
def mode(request):
    global MODE
    MODE = request.param
    return request.param


MODE = "splice"


@pytest.fixture(autouse=True, scope="module")
def no_pump_left_behind():
    """This process's ccl-pump (the shared one the forwarders use) stops with the module."""
    yield
    close_compiled_pump()


def open_links() -> int:
    """Connections the current mode's pump still holds (0 for the modes without one)."""
    if MODE == "splice":
        return shared_pump().open_links
    if MODE == "cpump":
        return compiled_pump().open_links
    return 0


def carried_by_the_compiled_pump(before: int) -> bool:
    """In cpump mode, the connections went through ccl-pump (not the Python fallback)."""
    return MODE != "cpump" or compiled_pump().stats["connections"] > before


def cpump_connections() -> int:
    pump = compiled_pump() if MODE == "cpump" else None
    return pump.stats["connections"] if pump is not None else 0


async def frontend(backends, **kw) -> tuple[Forwarder, int]:
    fwd = Forwarder("test", backends, mode=MODE, **kw)
    await fwd.listen([("127.0.0.1", 0)])
    return fwd, fwd.bound[0][1]


async def ask(port: int, text: str = "hi") -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(text.encode() + b"\n")
    line = await asyncio.wait_for(r.readline(), 30)
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
    # without the connect timeout, each try of the mute backend would hang for the kernel's SYN
    # retries (~2 minutes); with it, 8 asks take ~2.4 s: a generous bound for a machine at load 10
    assert time.monotonic() - t0 < 30
    fwd.close()
    for s in servers:
        s.close()
    for f in fillers:
        f.close()
    silent.close()


async def test_no_ready_backend_resets_at_once():
    fwd, port = await frontend([])
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"x\n")
    # reset (or closed) by the proxy itself: a proxy waiting for a backend would time this out
    with pytest.raises((ConnectionResetError, asyncio.IncompleteReadError)):
        data = await asyncio.wait_for(r.readline(), 20)
        if not data:
            raise asyncio.IncompleteReadError(b"", None)
    assert fwd.stats["failed"] == 1
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
    carried = cpump_connections()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"x" * (8 << 20))
    await w.drain()
    w.write_eof()
    assert await asyncio.wait_for(r.read(), 60) == str(8 << 20).encode()
    assert received.result() == 8 << 20
    assert carried_by_the_compiled_pump(carried)
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


# ---------------------------------------------------------------------- stress: every way a connection ends

def body_of(name: str, size: int) -> bytes:
    return (name.encode() * (size // len(name) + 1))[:size]


async def talker(name: str):
    """A backend speaking a tiny protocol: each line ``KIND SIZE`` asks for a ``SIZE\\n`` header,
    then, after a short pause (headers and body in separate segments), a body of ``SIZE`` bytes
    of its name. ``ka``: keep the connection; ``close``: FIN after the body (busybox httpd's
    way); ``rst``: reset after the body; ``half``: answer only after the client's FIN."""
    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                kind, size = line.decode().split()
                size = int(size)
                if kind == "half":
                    await reader.read()
                writer.write(f"{size}\n".encode())
                await writer.drain()
                await asyncio.sleep(0.002)
                writer.write(body_of(name, size))
                await writer.drain()
                if kind == "rst":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if kind in ("close", "half"):
                    writer.write_eof()
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, Backend("127.0.0.1", server.sockets[0].getsockname()[1])


def read_answer(sock: socket.socket, f) -> tuple[str, int]:
    """One header + body from a blocking socket file; returns (backend name, size)."""
    header = f.readline()
    if not header:
        raise ConnectionError("closed before the header")
    size = int(header)
    body = f.read(size)
    if len(body) != size:
        raise ConnectionError(f"body cut at {len(body)} of {size}")
    name = next(n for n in NAMES if body[: len(n)] == n.encode()[: size] or size == 0)
    assert body == body_of(name, size), "bytes of two backends mixed"
    return name, size


NAMES = [f"b{i:02d}-" for i in range(40)]


def client_session(port: int, kind: str, rng) -> None:
    """One client's life of the given kind; raises on a wrong answer, a timeout (a stall) or a cut."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        f = sock.makefile("rb")
        if kind == "ka":
            for _ in range(rng.randint(2, 15)):
                size = rng.choice([0, 1, 6, 100, 1500, 70_000, 300_000])
                sock.sendall(f"ka {size}\n".encode())
                read_answer(sock, f)
            return
        if kind == "slow":
            size = 3 << 20
            sock.sendall(f"close {size}\n".encode())
            sock.shutdown(socket.SHUT_WR)
            time.sleep(0.05)                      # the backend fills every buffer and hangs up
            header = f.readline()
            got = 0
            while chunk := f.read1(65536):
                got += len(chunk)
                if rng.random() < 0.05:
                    time.sleep(0.005)
            assert int(header) == size and got == size, f"slow reader got {got} of {size}"
            return
        size = rng.choice([0, 6, 1500, 100_000])
        sock.sendall(f"{kind} {size}\n".encode())
        if kind == "half":
            sock.shutdown(socket.SHUT_WR)
        if kind == "rst":
            try:                                  # the reset may overtake the bytes: cut is fine, a hang is not
                read_answer(sock, f)
                f.read()
            except (ConnectionError, OSError):
                pass
            return
        read_answer(sock, f)
        assert f.read() == b"", "bytes after the answer"  # and the backend's FIN came through


@pytest.mark.timeout(300)
async def test_stress_short_keep_alive_half_closed_reset_and_slow_connections_while_endpoints_churn():
    import random
    live = [await talker(NAMES[i]) for i in range(3)]
    fwd, port = await frontend([b for _, b in live], connect_timeout=0.5)
    before, carried = open_links(), cpump_connections()
    stop = asyncio.Event()

    async def churn():
        nxt, leaving = 3, []
        while not stop.is_set():
            await asyncio.sleep(0.05)
            live.append(await talker(NAMES[nxt % len(NAMES)]))
            nxt += 1
            fwd.balancer.update([b for _, b in live[-3:]], None)
            leaving.append(live.pop(0)[0])
            if len(leaving) > 5:                  # gone from the balancer a while ago: connections
                leaving.pop(0).close()            # being made to it are through; open ones finish
        for s in leaving:
            s.close()

    def worker(seed: int) -> list[str]:
        rng = random.Random(seed)
        errors = []
        kinds = ["ka", "close", "close", "half", "rst", "slow"]
        for _ in range(25 if MODE != "asyncio" else 10):
            kind = rng.choice(kinds)
            try:
                client_session(port, kind, rng)
            except (OSError, ConnectionError, AssertionError, ValueError) as exc:
                errors.append(f"{kind}: {exc!r}")
        return errors

    churner = asyncio.create_task(churn())
    results = await asyncio.gather(*(asyncio.to_thread(worker, s) for s in range(24)))
    stop.set()
    await churner
    errors = [e for r in results for e in r]
    assert errors == [], f"{len(errors)} failed: {errors[:5]}"
    assert fwd.stats["failed"] == 0
    assert carried_by_the_compiled_pump(carried)
    deadline = time.monotonic() + 30              # every finished connection let go of its sockets and pipes
    while open_links() > before and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert open_links() <= before
    fwd.close()
    for s, _ in live:
        s.close()


async def test_hung_up_backend_with_bytes_still_in_the_pipe_delivers_them_all():
    """The client half-closes, the backend answers 4 MiB and hangs up while the client is not
    reading yet: the backend's socket reports HUP with the pipe stuck behind the full client
    socket. The first epoll pump stopped watching it there and never read the rest (a stall)."""
    size = 4 << 20

    async def handle(reader, writer):
        await reader.read()
        writer.write(b"y" * size)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    fwd, port = await frontend([Backend("127.0.0.1", server.sockets[0].getsockname()[1])])

    def client() -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            s.sendall(b"go")
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.3)
            got = 0
            while d := s.recv(1 << 16):
                got += len(d)
            return got
    carried = cpump_connections()
    for _ in range(3):
        assert await asyncio.to_thread(client) == size
    assert carried_by_the_compiled_pump(carried)
    fwd.close()
    server.close()


def test_a_refusing_listener_keeps_its_queued_connections_and_takes_no_new_ones():
    """Closing a listener resets the connections the kernel already queued for it (what a client
    saw as the node runtime restarted during an upgrade); ``refuse_new_connections`` first drops new
    handshakes so the queue can be emptied by accepting, and nothing queued is reset."""
    import socket as _socket

    from node_runtime.proxy.forwarder import accept_queue_length, refuse_new_connections

    def listener() -> _socket.socket:
        sock = _socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        return sock

    # without it: a queued connection is reset when the listener closes
    plain = listener()
    queued = _socket.create_connection(plain.getsockname(), timeout=30)
    plain.close()
    queued.settimeout(30)
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        queued.sendall(b"GET / HTTP/1.0\r\n\r\n")
        queued.recv(1)
    queued.close()

    # with it: the queued one is still accepted and served; a new one is not answered at all
    sock = listener()
    waiting = _socket.create_connection(sock.getsockname(), timeout=30)
    deadline = time.monotonic() + 30
    while accept_queue_length(sock) != 1:
        assert time.monotonic() < deadline, "the connection never reached the accept queue"
        time.sleep(0.01)
    assert refuse_new_connections(sock)
    late = _socket.socket()
    late.settimeout(0.5)
    with pytest.raises(TimeoutError):         # dropped: neither accepted nor refused
        late.connect(sock.getsockname())
    late.close()
    assert accept_queue_length(sock) == 1
    served, _ = sock.accept()
    assert accept_queue_length(sock) == 0
    sock.close()
    waiting.sendall(b"ping")
    assert served.recv(4) == b"ping"
    served.sendall(b"pong")
    waiting.settimeout(30)
    assert waiting.recv(4) == b"pong"
    served.close()
    waiting.close()
