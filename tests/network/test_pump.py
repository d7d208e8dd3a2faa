"""The compiled pump (``ccl-pump``) as a process: its life beside the agent, its deaths, its fds.

Real processes and real TCP connections on loopback, no mocks. The byte-moving semantics (short,
keep-alive, half-closed, reset and slow connections, a hung-up backend with bytes in the pipe)
are tested for every mode, this one included, in test_forwarder.py.
"""

from __future__ import annotations

import array
import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from node_runtime.proxy import compiled_pump as cp
from node_runtime.proxy.compiled_pump import CompiledPump, PumpUnavailable, close_compiled_pump, compiled_pump
from node_runtime.proxy.forwarder import Forwarder, describe_pumps, shared_pump
from node_runtime.proxy.service_proxy import ServiceProxy
from node_runtime.proxy.table import Backend

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def no_pump_left_behind():
    """This process's ccl-pump (the shared one the forwarders use) stops with the module."""
    yield
    close_compiled_pump()
WAIT = 30.0         # anything that involves a process: generous, the machine may be at load 10


def wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        time.sleep(0.05)


async def async_wait_until(predicate, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.05)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        a = socket.create_connection(listener.getsockname())
        b, _ = listener.accept()
    return a, b


def linked(pump: CompiledPump) -> tuple[socket.socket, socket.socket]:
    """A client and a backend socket whose connection runs through ``pump``."""
    client, client_inner = tcp_pair()
    upstream_inner, backend = tcp_pair()
    pump.add(client_inner, upstream_inner)
    return client, backend


def binary() -> Path:
    pump = compiled_pump()
    assert pump is not None, "no C compiler built ccl-pump on this machine"
    return pump.binary


async def line_backend():
    async def handle(reader, writer):
        try:
            while line := await reader.readline():
                writer.write(b"ok:" + line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, Backend("127.0.0.1", server.sockets[0].getsockname()[1])


def ask(port: int, text: str = "hi") -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as s:
        s.sendall(text.encode() + b"\n")
        return s.makefile("rb").readline().decode().strip()


# ---------------------------------------------------------------------- bytes, both transfers


@pytest.mark.parametrize("transfer", ["hybrid", "splice"])
def test_both_ways_large_and_half_closed_through_each_transfer(transfer):
    pump = CompiledPump(binary(), transfer=transfer)
    try:
        client, backend = linked(pump)
        size = 3 << 20
        up = threading.Thread(target=lambda: (client.sendall(b"u" * size), client.shutdown(socket.SHUT_WR)))
        up.start()
        got = b""
        while chunk := backend.recv(1 << 16):       # the client's FIN comes through after its bytes
            got += chunk
        up.join()
        assert got == b"u" * size
        down = threading.Thread(target=lambda: (backend.sendall(b"d" * size + b"end"), backend.close()))
        down.start()                                 # the other way still flows after the half-close
        got = b""
        while chunk := client.recv(1 << 16):
            got += chunk
        down.join()
        assert got == b"d" * size + b"end"
        client.close()
        wait_until(lambda: pump.open_links == 0, "the pump reported the connection's end")
    finally:
        pump.close()
    assert gone(pump._process.pid)


def test_describe_lists_each_open_connection_with_its_peers(monkeypatch):
    pump = CompiledPump(binary())
    monkeypatch.setattr(cp, "_SHARED", pump)        # the one the agent's SIGUSR1 dump asks
    try:
        pairs = [linked(pump) for _ in range(3)]
        assert sum(line.startswith("ccl-pump ") for line in describe_pumps()) == 3
        lines = pump.describe()
        assert len(lines) == 3, lines
        for client, backend in pairs:
            assert any(str(backend.getsockname()[1]) in line and str(client.getsockname()[1]) in line
                       for line in lines), lines
        assert all("up:pending=0" in line and "client=1 upstream=1" in line for line in lines), lines
        for client, backend in pairs:
            client.close()
            backend.close()
        wait_until(lambda: pump.open_links == 0, "every connection's end reported")
        assert pump.describe() == []
    finally:
        pump.close()


def test_bytes_keep_moving_while_the_agent_reads_no_reports():
    """The agent's reader thread may be starved (GIL) for a while: thousands of END reports piling
    up in the control socket must not stall the data path of the other connections."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen([str(binary()), str(theirs.fileno()), str(os.getpid())], pass_fds=[theirs.fileno()])
    theirs.close()
    listener = socket.create_server(("127.0.0.1", 0))

    def pair():
        a = socket.create_connection(listener.getsockname())
        return a, listener.accept()[0]

    def add(link_id: int, client_side, upstream_side) -> None:
        fds = array.array("i", [client_side.fileno(), upstream_side.fileno()])
        ours.sendmsg([cp._RECORD.pack(cp._MSG_ADD, 0, link_id)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        client_side.close()
        upstream_side.close()
    try:
        ended = 3000
        for i in range(ended):             # each one ends at once: one END report (and message) each
            client, client_inner = pair()
            upstream_inner, backend = pair()
            add(i + 1, client_inner, upstream_inner)
            client.close()
            backend.close()
        client, client_inner = pair()
        upstream_inner, backend = pair()
        add(ended + 1, client_inner, upstream_inner)
        client.sendall(b"still moving")
        backend.settimeout(WAIT)
        assert backend.recv(100) == b"still moving"
        ours.settimeout(WAIT)
        seen: set[int] = set()
        while len(seen) < ended:           # and every report arrives once the agent reads again
            data = ours.recv(1 << 16)
            for off in range(0, len(data), cp._RECORD.size):
                kind, _, link_id = cp._RECORD.unpack_from(data, off)
                assert kind == cp._MSG_END
                seen.add(link_id)
        assert seen == set(range(1, ended + 1))
        client.close()
        backend.close()
    finally:
        listener.close()
        ours.close()
        proc.wait(WAIT)


# ---------------------------------------------------------------------- its life beside the agent

AGENT = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
from node_runtime.proxy.forwarder import Forwarder
from node_runtime.proxy.table import Backend

async def main():
    fwd = Forwarder("t", [Backend("127.0.0.1", int(sys.argv[2]))], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    print(fwd.bound[0][1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_pump_process_goes_when_the_agent_is_killed():
    server, backend = await line_backend()
    agent = subprocess.Popen([sys.executable, "-c", AGENT, str(REPO), str(backend.port)],
                             stdout=subprocess.PIPE, text=True)
    try:
        port = int(await asyncio.wait_for(asyncio.to_thread(agent.stdout.readline), WAIT))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok:one\n"
        pumps = [p for p in psutil.Process(agent.pid).children() if p.name() == "ccl-pump"]
        assert len(pumps) == 1, "the agent runs one ccl-pump"
        agent.kill()
        agent.wait()
        await async_wait_until(lambda: gone(pumps[0].pid), "ccl-pump exited after its agent was killed")
        # and the connection it held ended with it rather than hanging
        try:
            rest = await asyncio.wait_for(reader.read(), WAIT)
        except ConnectionError:
            rest = b""
        assert rest == b""
        writer.close()
    finally:
        agent.kill()
        agent.wait()
        server.close()


async def test_pump_process_goes_when_the_proxy_closes():
    server, backend = await line_backend()
    with socket.socket() as s:                      # a free port for the "ClusterIP" (loopback here)
        s.bind(("127.0.0.1", 0))
        service_port = s.getsockname()[1]
    service = {"metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.1", "selector": {"app": "web"},
                        "ports": [{"port": service_port, "targetPort": backend.port}]}}
    endpoints = [{"metadata": {"name": "web", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": backend.port}]}]}]
    proxy = ServiceProxy(None, "n1", ["127.0.0.1"], bind_cluster_ips=False, mode="cpump")
    try:
        await proxy.apply([service], endpoints)
        assert list(proxy.forwarders) == [("127.0.0.1", service_port)]
        assert await asyncio.to_thread(ask, service_port) == "ok:hi"
        pump = compiled_pump()
        pid = pump.pid
        assert pid is not None and pump.stats["connections"] >= 1
    finally:
        await proxy.close()
        server.close()
    await async_wait_until(lambda: gone(pid), "ccl-pump exited when the proxy closed")
    assert not [p for p in psutil.Process().children() if p.name() == "ccl-pump" and not gone(p.pid)]


async def test_a_request_in_flight_when_the_proxy_closes_gets_its_whole_answer():
    """Stopping the node runtime (an upgrade restarting it) closes the listeners at once but lets
    the connections being forwarded finish, and a service manager's SIGTERM to the agent's whole
    process group does not take the pump down under them."""
    release = asyncio.Event()

    async def handle(reader, writer):
        await reader.readline()
        await release.wait()
        writer.write(b"late answer\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    backend_port = server.sockets[0].getsockname()[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        service_port = s.getsockname()[1]
    service = {"metadata": {"name": "slow", "namespace": "default"},
               "spec": {"type": "ClusterIP", "clusterIP": "127.0.0.1", "selector": {"app": "slow"},
                        "ports": [{"port": service_port, "targetPort": backend_port}]}}
    endpoints = [{"metadata": {"name": "slow", "namespace": "default"},
                  "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": backend_port}]}]}]
    proxy = ServiceProxy(None, "n1", ["127.0.0.1"], bind_cluster_ips=False, mode="cpump", drain_timeout=WAIT)

    def client() -> bytes:
        with socket.create_connection(("127.0.0.1", service_port), timeout=WAIT) as c:
            c.sendall(b"question\n")
            return c.makefile("rb").readline()

    try:
        await proxy.apply([service], endpoints)
        answer = asyncio.create_task(asyncio.to_thread(client))
        await async_wait_until(lambda: (cp.compiled_pump_if_running() is not None
                                        and cp.compiled_pump_if_running().open_links == 1), "the request in the pump")
        pid = cp.compiled_pump_if_running().pid
        os.kill(pid, signal.SIGTERM)                        # what a service manager sends the whole group
        closing = asyncio.create_task(proxy.close())
        await asyncio.sleep(0.5)
        assert not closing.done(), "the proxy closed with a connection still being forwarded"
        release.set()
        assert await answer == b"late answer\n"
        await asyncio.wait_for(closing, WAIT)
    finally:
        release.set()
        await proxy.close()
        server.close()
    await async_wait_until(lambda: gone(pid), "ccl-pump exited once the proxy had closed")


# ---------------------------------------------------------------------- deaths


async def test_a_killed_pump_is_noticed_logged_and_replaced(caplog):
    caplog.set_level(logging.INFO, logger="node_runtime.proxy.compiled_pump")
    server, backend = await line_backend()
    fwd = Forwarder("t", [backend], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    port = fwd.bound[0][1]
    try:
        pump = compiled_pump()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"before\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok:before\n"
        first, died = pump.pid, pump.stats["died"]
        os.kill(first, signal.SIGKILL)
        await async_wait_until(lambda: pump.stats["died"] == died + 1, "the supervisor noticed the death")
        assert any("exited with status -9" in r.getMessage() for r in caplog.records), caplog.text
        assert pump.open_links == 0                 # what it held is gone with it
        try:                                        # the cut connection ends, it does not hang
            rest = await asyncio.wait_for(reader.read(), WAIT)
        except ConnectionError:
            rest = b""
        assert rest == b""
        writer.close()
        carried = pump.stats["connections"]
        assert [await asyncio.to_thread(ask, port, str(i)) for i in range(5)] == [f"ok:{i}" for i in range(5)]
        assert pump.pid not in (None, first) and pump.stats["connections"] == carried + 5
    finally:
        fwd.close()
        server.close()


def assert_carried_by_the_python_pump(writer: asyncio.StreamWriter) -> None:
    """The client connection of ``writer`` is one of the shared Python pump's links (by address, not
    by a count: links of earlier tests may still be closing in that process-wide pump meanwhile)."""
    mine = tuple(writer.get_extra_info("sockname")[:2])
    links = shared_pump().describe()
    assert any(line.startswith(f"{mine} -> ") for line in links), (mine, links)


async def test_repeated_deaths_fall_back_to_the_python_pump(monkeypatch, caplog):
    now = [0.0]
    pump = CompiledPump(binary(), max_restarts=2, restart_window=60, clock=lambda: now[0])
    monkeypatch.setattr(cp, "_SHARED", pump)
    monkeypatch.setattr(cp, "_SHARED_TRIED", True)
    server, backend = await line_backend()
    fwd = Forwarder("t", [backend], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    port = fwd.bound[0][1]
    try:
        for death in (1, 2):
            assert await asyncio.to_thread(ask, port) == "ok:hi"
            os.kill(pump.pid, signal.SIGKILL)
            await async_wait_until(lambda: pump.stats["died"] == death, f"death {death} noticed")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"after\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok:after\n"
        assert pump.gave_up and pump.stats["started"] == 2
        assert_carried_by_the_python_pump(writer)
        assert any("from now on" in r.getMessage() for r in caplog.records)
        with pytest.raises(PumpUnavailable):
            pump.add(*tcp_pair())
        writer.close()
        now[0] = 1000                               # gave up for good, not for a window
        assert await asyncio.to_thread(ask, port) == "ok:hi" and pump.stats["started"] == 2
    finally:
        fwd.close()
        server.close()
        pump.close()


async def test_a_pump_that_cannot_start_leaves_the_connection_to_the_python_pump(monkeypatch, caplog):
    pump = CompiledPump(Path("/nonexistent/ccl-pump"))
    monkeypatch.setattr(cp, "_SHARED", pump)
    monkeypatch.setattr(cp, "_SHARED_TRIED", True)
    server, backend = await line_backend()
    fwd = Forwarder("t", [backend], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.bound[0][1])
        writer.write(b"x\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok:x\n"
        assert_carried_by_the_python_pump(writer)
        assert pump.stats["connections"] == 0
        assert any("did not start" in r.getMessage() for r in caplog.records), caplog.text
        writer.close()
    finally:
        fwd.close()
        server.close()


async def test_no_binary_means_the_python_pump(monkeypatch):
    monkeypatch.setattr(cp, "_SHARED", None)
    monkeypatch.setattr(cp, "_SHARED_TRIED", False)
    monkeypatch.setattr(cp, "find_or_build", lambda *a, **kw: None)     # no compiler, nothing shipped
    server, backend = await line_backend()
    fwd = Forwarder("t", [backend], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    try:
        assert compiled_pump() is None
        reader, writer = await asyncio.open_connection("127.0.0.1", fwd.bound[0][1])
        writer.write(b"x\n")
        assert await asyncio.wait_for(reader.readline(), WAIT) == b"ok:x\n"
        assert_carried_by_the_python_pump(writer)
        writer.close()
    finally:
        fwd.close()
        server.close()


# ---------------------------------------------------------------------- descriptors


def open_fds(pid: int | None = None) -> int:
    return len(os.listdir(f"/proc/{pid or 'self'}/fd"))


async def test_agent_fds_back_to_baseline_after_1000_connections():
    server, backend = await line_backend()
    fwd = Forwarder("t", [backend], mode="cpump")
    await fwd.listen([("127.0.0.1", 0)])
    port = fwd.bound[0][1]
    pump = compiled_pump()
    try:
        assert await asyncio.to_thread(ask, port) == "ok:hi"        # pump started, loop warmed up
        await async_wait_until(lambda: pump.open_links == 0, "the warm-up connection ended")
        agent_fds, pump_fds, carried = open_fds(), open_fds(pump.pid), pump.stats["connections"]

        def clients(n: int) -> list[str]:
            return [ask(port, str(i)) for i in range(n)]
        answers = await asyncio.gather(*(asyncio.to_thread(clients, 125) for _ in range(8)))
        assert all(a == [f"ok:{i}" for i in range(125)] for a in answers)
        assert pump.stats["connections"] == carried + 1000 and fwd.stats["failed"] == 0
        await async_wait_until(lambda: pump.open_links == 0, "every connection's end reported")
        await async_wait_until(lambda: open_fds() <= agent_fds,
                               f"agent fds back to {agent_fds} (now {open_fds()})")
        await async_wait_until(lambda: open_fds(pump.pid) <= pump_fds,
                               f"ccl-pump fds back to {pump_fds} (now {open_fds(pump.pid)})")
    finally:
        fwd.close()
        server.close()
