"""The cluster DNS server: UDP and TCP on one address, answers from an in-memory zone.

Names under the cluster domain are answered authoritatively (A records, NODATA for other
types of a known name, NXDOMAIN for unknown ones). Every other name is REFUSED unless an
``upstream`` (host, port) is configured, in which case the query is relayed there as is. No
upstream is the default on purpose: in tests and labs no query may leave the machine.

``ClusterDNS.run(client)`` keeps the zone in step with the API through Service and Endpoints
informers; ``update(services, endpoints)`` sets it directly.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from node_runtime.dns.message import (FORMERR, NOERROR, NOTIMP, NXDOMAIN, REFUSED, SERVFAIL, TYPE_A, TYPE_ANY,
                                      DnsFormatError, Query, build_response, parse_query)
from node_runtime.dns.records import zone

log = logging.getLogger(__name__)


class _Relay(asyncio.DatagramProtocol):
    def __init__(self, waiter: asyncio.Future):
        self.waiter = waiter

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.waiter.done():
            self.waiter.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.waiter.done():
            self.waiter.set_exception(exc)


class ClusterDNS:
    def __init__(self, domain: str = "cluster.local", *, upstream: tuple[str, int] | None = None, ttl: int = 5,
                 upstream_timeout: float = 2.0):
        self.domain = domain.strip(".").lower()
        self.upstream = upstream
        self.ttl = ttl
        self.upstream_timeout = upstream_timeout
        self.records: dict[str, list[str]] = {}
        self.transports: list[asyncio.BaseTransport] = []
        self.servers: list[asyncio.base_events.Server] = []
        self.stats = {"queries": 0, "refused": 0, "forwarded": 0}

    def update(self, services: list[dict], endpoints: list[dict]) -> None:
        self.records = zone(services, endpoints, self.domain)

    def in_zone(self, name: str) -> bool:
        return name == self.domain or name.endswith("." + self.domain)

    def local_answer(self, q: Query) -> bytes | None:
        """The answer for a name in our zone, else None (refuse or forward)."""
        if not self.in_zone(q.name):
            return None
        addrs = self.records.get(q.name)
        if not addrs:
            return build_response(q, NXDOMAIN)
        if q.qtype in (TYPE_A, TYPE_ANY):
            return build_response(q, NOERROR, addrs, ttl=self.ttl)
        return build_response(q, NOERROR)          # the name exists, not with this type

    async def handle(self, data: bytes) -> bytes | None:
        self.stats["queries"] += 1
        try:
            q = parse_query(data)
        except DnsFormatError:
            if len(data) >= 12:
                return data[:2] + struct.pack("!HHHHH", 0x8000 | FORMERR, 0, 0, 0, 0)
            return None
        if q.opcode != 0:
            return build_response(q, NOTIMP)
        answer = self.local_answer(q)
        if answer is not None:
            return answer
        if self.upstream is None:
            self.stats["refused"] += 1
            return build_response(q, REFUSED, authoritative=False)
        self.stats["forwarded"] += 1
        try:
            return await self._forward(data)
        except (OSError, TimeoutError) as exc:
            log.warning("dns: upstream %s:%d failed for %s: %s", *self.upstream, q.name, exc)
            return build_response(q, SERVFAIL, authoritative=False)

    async def _forward(self, data: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Relay(waiter), remote_addr=self.upstream)
        try:
            transport.sendto(data)
            return await asyncio.wait_for(waiter, self.upstream_timeout)
        finally:
            transport.close()

    # ------------------------------------------------------------------ serving

    async def start(self, host: str, port: int = 53) -> int:
        """Listen on UDP and TCP ``host:port`` (port 0: a free port, the same for both)."""
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _TcpConn(self), host, port, reuse_address=True)
        port = server.sockets[0].getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(host, port))
        self.servers.append(server)
        self.transports.append(transport)
        return port

    def close(self) -> None:
        for t in self.transports:
            t.close()
        for s in self.servers:
            s.close()
        self.transports, self.servers = [], []

    async def run(self, client) -> None:
        """Keep the zone in step with the API's Services and Pods until cancelled."""
        from clusterctl.client.informer import Informer
        services, pods = Informer(client, "services"), Informer(client, "endpoints")
        dirty = asyncio.Event()
        for inf in (services, pods):
            inf.add_handler(on_add=lambda _o: dirty.set(), on_update=lambda _o, _n: dirty.set(), on_delete=lambda _o: dirty.set())
        tasks = [asyncio.create_task(services.run()), asyncio.create_task(pods.run())]
        try:
            await services.wait_for_sync()
            await pods.wait_for_sync()
            while True:
                dirty.clear()
                self.update(services.list(), pods.list())
                await dirty.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, dns: ClusterDNS):
        self.dns = dns
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        q = None
        try:
            q = parse_query(data)
        except DnsFormatError:
            pass
        if q is not None and self.transport is not None:
            local = self.dns.local_answer(q)
            if local is not None:       # the common case answers without a task
                self.transport.sendto(local, addr)
                self.dns.stats["queries"] += 1
                return
        asyncio.get_running_loop().create_task(self._reply(data, addr))

    async def _reply(self, data: bytes, addr) -> None:
        answer = await self.dns.handle(data)
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)


class _TcpConn(asyncio.Protocol):
    def __init__(self, dns: ClusterDNS):
        self.dns = dns
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 2:
            n = struct.unpack_from("!H", self.buf)[0]
            if len(self.buf) < 2 + n:
                return
            msg, self.buf = self.buf[2: 2 + n], self.buf[2 + n:]
            asyncio.get_running_loop().create_task(self._reply(msg))

    async def _reply(self, msg: bytes) -> None:
        answer = await self.dns.handle(msg)
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(answer)) + answer)
