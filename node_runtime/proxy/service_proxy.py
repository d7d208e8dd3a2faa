"""The node's Service proxy: watches Services and Endpoints, keeps one ``Forwarder`` per frontend.

Every change (a Service added, a pod turning ready, a pod deleted) marks the proxy dirty; one
reconcile pass then computes all frontends (``table.build_frontends``), swaps backend lists in
place (new connections see the change at once, open ones are untouched), opens listeners for
new frontends (ClusterIPs on the dummy interface, NodePorts on each node address) and closes
listeners of frontends that went away. A listener that cannot bind is retried on the next pass.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from node_runtime.proxy.addresses import ClusterIPAddresses
from node_runtime.proxy.compiled_pump import close_compiled_pump, compiled_pump, compiled_pump_if_running
from node_runtime.proxy.forwarder import DEFAULT_MODE, Forwarder
from node_runtime.proxy.table import Frontend, build_frontends

if TYPE_CHECKING:
    from clusterctl.client.informer import Informer
    from clusterctl.client.rest import ApiClient

log = logging.getLogger(__name__)


class ServiceProxy:
    def __init__(self, client: ApiClient | None, node_name: str, node_addresses: list[str], *,
                 bind_cluster_ips: bool = True, connect_timeout: float = 1.0, attempts: int = 3,
                 extra_cluster_ips: set[str] | None = None, mode: str = DEFAULT_MODE, native_dir: Path | None = None,
                 drain_timeout: float = 3.0):
        self.client = client
        self.node_name = node_name
        self.node_addresses = list(node_addresses)
        self.connect_timeout = connect_timeout
        self.mode = mode                                           # Forwarder mode (see forwarder.py)
        self.native_dir = native_dir        # where ccl-pump is built when none is shipped (mode cpump)
        self.drain_timeout = drain_timeout  # on close, how long connections being forwarded may finish
        self.extra_cluster_ips = set(extra_cluster_ips or ())     # e.g. the cluster DNS address
        self.attempts = attempts
        self.addresses = ClusterIPAddresses(node_name) if bind_cluster_ips else None
        self.forwarders: dict[tuple[str, int], Forwarder] = {}
        self._dirty = asyncio.Event()
        self.synced = asyncio.Event()
        self.services: Informer | None = None
        self.endpoints: Informer | None = None

    # ------------------------------------------------------------------ watching

    async def run(self) -> None:
        from clusterctl.client.informer import Informer   # here: apply() alone needs no API client
        assert self.client is not None
        self.services = Informer(self.client, "services")
        self.endpoints = Informer(self.client, "endpoints")
        for inf in (self.services, self.endpoints):
            inf.add_handler(on_add=lambda _o: self._dirty.set(), on_update=lambda _o, _n: self._dirty.set(),
                            on_delete=lambda _o: self._dirty.set())
        tasks = [asyncio.create_task(self.services.run(), name="proxy services"),
                 asyncio.create_task(self.endpoints.run(), name="proxy endpoints")]
        try:
            await self.services.wait_for_sync()
            await self.endpoints.wait_for_sync()
            while True:
                self._dirty.clear()
                try:
                    await self.apply(self.services.list(), self.endpoints.list())
                except asyncio.CancelledError:
                    raise
                except Exception:       # a bad object must not stop the proxy for everyone else
                    log.exception("service proxy reconcile failed")
                self.synced.set()
                await self._dirty.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reconciling

    def _listen_addresses(self, fe: Frontend) -> list[tuple[str, int]]:
        return [(fe.ip, fe.port)] if fe.ip else [(a, fe.port) for a in self.node_addresses]

    async def apply(self, services: list[dict], endpoints: list[dict]) -> None:
        if self.mode == "cpump":
            await asyncio.to_thread(compiled_pump, self.native_dir)    # found or built once, off the loop
        want = build_frontends(services, endpoints)
        cluster_ips = {fe.ip for fe in want.values() if fe.ip} | self.extra_cluster_ips
        if self.addresses is not None:
            await self.addresses.add(cluster_ips)
        for key in [k for k in self.forwarders if k not in want]:
            self.forwarders.pop(key).close()
            log.info("proxy: closed %s:%d", *key)
        for key, fe in want.items():
            fwd = self.forwarders.get(key)
            if fwd is not None:
                old, new = set(fwd.balancer.backends), set(fe.backends)
                if old != new:
                    log.info("proxy: %s backends %d -> %d (%s)", fwd.name, len(old), len(new), " ".join(
                        [f"+{b.ip}:{b.port}" for b in sorted(new - old, key=str)] + [f"-{b.ip}:{b.port}" for b in sorted(old - new, key=str)]))
                fwd.balancer.update(fe.backends, fe.affinity_timeout)
                continue
            fwd = Forwarder(f"{fe.service}:{fe.port_name or fe.port}", fe.backends, affinity_timeout=fe.affinity_timeout,
                            connect_timeout=self.connect_timeout, attempts=self.attempts, mode=self.mode)
            try:
                await fwd.listen(self._listen_addresses(fe))
            except OSError as exc:
                fwd.close()
                log.warning("proxy: cannot listen for %s on %s: %s", fwd.name, self._listen_addresses(fe), exc)
                continue
            self.forwarders[key] = fwd
            log.info("proxy: %s on %s -> %d backends", fwd.name, self._listen_addresses(fe), len(fe.backends))
        if self.addresses is not None:
            await self.addresses.sync(cluster_ips)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        forwarders = list(self.forwarders.values())
        # No new connections; the ones the kernel already queued are still accepted and forwarded
        # (closing a listener with connections in its queue resets them: a request sent to this
        # node's NodePort as the node runtime restarted for an upgrade failed that way)
        for fwd in forwarders:
            fwd.refuse_new()
        deadline = loop.time() + min(1.0, self.drain_timeout)
        while any(fwd.queued() for fwd in forwarders) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for fwd in forwarders:
            fwd.close()
        self.forwarders.clear()
        deadline = loop.time() + self.drain_timeout
        while any(fwd.connecting() for fwd in forwarders) and loop.time() < deadline:
            await asyncio.sleep(0.01)   # accepted, still connecting to a backend: let them hand over
        if self.mode == "cpump":
            # no new connections now; the ones being forwarded (a request and its answer, mostly)
            # get drain_timeout to finish before the pump process goes with the proxy — stopping it
            # at once reset requests in flight when an upgrade restarted the node runtime
            pump = compiled_pump_if_running()
            deadline = loop.time() + self.drain_timeout
            while pump is not None and pump.open_links and loop.time() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.to_thread(close_compiled_pump)
        if self.addresses is not None:
            await self.addresses.remove_link()
