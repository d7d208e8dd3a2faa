"""The cluster DNS server on loopback: real UDP/TCP sockets, hand-built queries."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from node_runtime.dns.message import NOERROR, NXDOMAIN, REFUSED, TYPE_AAAA, build_query, parse_response
from node_runtime.dns.server import ClusterDNS
from node_runtime.proxy.table import endpoints_from_pods

pytestmark = pytest.mark.timeout(120)

SERVICES = [
    {"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.20", "selector": {"app": "web"}}},
    {"metadata": {"name": "db", "namespace": "prod"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}},
    {"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com"}},
]


def pod(ip, app, ready=True, ns="prod"):
    return {"metadata": {"namespace": ns, "labels": {"app": app}},
            "status": {"phase": "Running", "podIP": ip, "conditions": [{"type": "Ready", "status": str(ready)}]}}


PODS = [pod("10.244.1.5", "db"), pod("10.244.2.7", "db"), pod("10.244.2.8", "db", ready=False)]


def raw_query(name: str, qtype: int = 1) -> bytes:
    """Written out by hand (not with the server's own encoder)."""
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


async def udp_ask(port: int, packet: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        await loop.sock_connect(s, ("127.0.0.1", port))
        await loop.sock_sendall(s, packet)
        return await asyncio.wait_for(loop.sock_recv(s, 4096), 20)


async def test_answers_cluster_names_over_udp_and_tcp_and_refuses_the_rest():
    dns = ClusterDNS("cluster.local")
    dns.update(SERVICES, endpoints_from_pods(SERVICES, PODS))
    port = await dns.start("127.0.0.1", 0)
    try:
        reply = await udp_ask(port, raw_query("web.default.svc.cluster.local"))
        assert reply[:2] == b"\x12\x34" and reply[2] & 0x84 == 0x84          # response, authoritative
        assert parse_response(reply) == (NOERROR, ["10.96.0.20"])
        assert parse_response(await udp_ask(port, raw_query("WEB.Default.svc.cluster.local"))) == (NOERROR, ["10.96.0.20"])
        # headless: the ready pods' IPs
        assert parse_response(await udp_ask(port, raw_query("db.prod.svc.cluster.local"))) == (NOERROR, ["10.244.1.5", "10.244.2.7"])
        # unknown in the zone, ExternalName, wrong namespace: NXDOMAIN; a known name's AAAA: no data
        for name in ("nope.default.svc.cluster.local", "ext.default.svc.cluster.local", "web.prod.svc.cluster.local"):
            assert parse_response(await udp_ask(port, raw_query(name)))[0] == NXDOMAIN, name
        assert parse_response(await udp_ask(port, raw_query("web.default.svc.cluster.local", TYPE_AAAA))) == (NOERROR, [])
        # outside the zone: refused, nothing forwarded anywhere
        assert parse_response(await udp_ask(port, raw_query("example.com")))[0] == REFUSED
        assert dns.stats["forwarded"] == 0
        # TCP, two queries in one stream
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for name in ("web.default.svc.cluster.local", "db.prod.svc.cluster.local"):
            q = raw_query(name)
            w.write(struct.pack("!H", len(q)) + q)
        answers = []
        for _ in range(2):
            n = struct.unpack("!H", await asyncio.wait_for(r.readexactly(2), 20))[0]
            answers.append(parse_response(await r.readexactly(n))[1])
        assert sorted(answers) == [["10.244.1.5", "10.244.2.7"], ["10.96.0.20"]]
        w.close()
        # garbage gets FORMERR or nothing, and the server keeps answering
        await asyncio.get_running_loop().run_in_executor(None, lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"\x00\x01garbage-bytes", ("127.0.0.1", port)))
        assert parse_response(await udp_ask(port, raw_query("web.default.svc.cluster.local")))[1] == ["10.96.0.20"]
    finally:
        dns.close()


async def test_upstream_forwarding_only_when_configured():
    upstream = ClusterDNS("example.test")
    upstream.update([{"metadata": {"name": "a", "namespace": "b"}, "spec": {"clusterIP": "10.96.9.9"}}], [])
    up_port = await upstream.start("127.0.0.1", 0)
    dns = ClusterDNS("cluster.local", upstream=("127.0.0.1", up_port))
    port = await dns.start("127.0.0.1", 0)
    try:
        assert parse_response(await udp_ask(port, build_query("a.b.svc.example.test"))) == (NOERROR, ["10.96.9.9"])
        assert dns.stats["forwarded"] == 1 and upstream.stats["queries"] == 1
    finally:
        dns.close()
        upstream.close()
