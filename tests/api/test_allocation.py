"""ClusterIP allocation keeps the bottom band of the service CIDR for addresses people choose (the
cluster DNS's 10.96.0.10), as Kubernetes does since KEP-3070."""

from __future__ import annotations

import ipaddress

from clusterctl.api.allocation import _free_cluster_ip, static_band


def test_static_band_sizes_follow_kubernetes():
    assert static_band(ipaddress.ip_network("10.96.0.0/12")) == 256
    assert static_band(ipaddress.ip_network("10.96.0.0/24")) == 16
    assert static_band(ipaddress.ip_network("10.96.0.0/20")) == 256


def test_dynamic_addresses_come_from_above_the_band_until_it_is_full():
    net = ipaddress.ip_network("10.96.0.0/26")          # 64 addresses: band .0-.15, .16-.62 above it
    used: set[str] = set()
    for _ in range(47):
        ip = _free_cluster_ip(net, used)
        assert int(ipaddress.ip_address(ip)) - int(net.network_address) >= 16, ip
        used.add(ip)
    # full above the band: the band's lowest free address, never .0 or .1
    assert _free_cluster_ip(net, used) == "10.96.0.2"
    used |= {f"10.96.0.{n}" for n in range(2, 16)}
    assert _free_cluster_ip(net, used) is None


def test_services_without_an_address_leave_the_dns_address_free(control_plane):
    cp = control_plane
    for i in range(12):
        body = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"band-{i}"},
                "spec": {"ports": [{"port": 80}]}}
        resp = cp.request("POST", "/api/v1/namespaces/default/services", body=body)
        assert resp.status == 201, resp.body
        ip = resp.json()["spec"]["clusterIP"]
        assert not ip.startswith("10.96.0."), f"band-{i} got {ip} from the static band"
    dns = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "band-dns"},
           "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 53, "protocol": "UDP"}]}}
    resp = cp.request("POST", "/api/v1/namespaces/default/services", body=dns)
    assert resp.status == 201, resp.body


# --- reservations: atomic allocation across API servers on one store ---------------------------

import asyncio
import itertools
from contextlib import asynccontextmanager

import aiohttp
import pytest

from clusterctl.api import allocation
from clusterctl.api.cli import init_data_dir
from clusterctl.api.server import ApiServer
from clusterctl.store.etcd_process import LocalEtcd

_prefixes = itertools.count(1)
SERVICES = "/api/v1/namespaces/default/services"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with LocalEtcd(tmp_path_factory.mktemp("etcd")) as server:
        yield server


class Server:
    """One in-process API server and an HTTP client on it."""

    def __init__(self, server: ApiServer, session: aiohttp.ClientSession):
        self.server, self.session = server, session

    @property
    def store(self):
        return self.server.ctx.store

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        async with self.session.request(method, self.server.url + path, json=body) as resp:
            return resp.status, await resp.json()

    async def create(self, name: str, **spec) -> tuple[int, dict]:
        spec.setdefault("ports", [{"port": 80}])
        return await self.request("POST", SERVICES, {"apiVersion": "v1", "kind": "Service",
                                                     "metadata": {"name": name}, "spec": spec})

    async def reservations(self, prefix: str) -> dict[str, dict]:
        result = await self.store.list(prefix)
        return {item.key[len(prefix):]: item.value for item in result.items}


@asynccontextmanager
async def api_servers(tmp_path, store: dict | None, count: int, *, cidr: str = "10.96.0.0/25",
                      node_ports: str = "30000-30099", clock=None):
    """``count`` API servers on one store (started together, as HA bootstrap does), plain HTTP."""
    started: list[Server] = []
    try:
        servers = []
        for i in range(count):
            _, cfg, token = init_data_dir(tmp_path / f"cp{i}", port=0, tls=False, store=store,
                                          extra={"service_cidr": cidr, "node_port_range": node_ports})
            servers.append((ApiServer(cfg, clock=clock), token))
        await asyncio.wait_for(asyncio.gather(*(s.start() for s, _ in servers)), 60)
        for s, token in servers:
            started.append(Server(s, aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"},
                                                           timeout=aiohttp.ClientTimeout(total=120))))
        yield started
    finally:
        for s in started:
            await s.session.close()
        for s, _ in servers:
            await s.stop()


def _etcd_store(etcd: LocalEtcd) -> dict:
    return etcd.store_config(prefix=f"/alloc-{next(_prefixes)}")


def _node_ports(svc: dict) -> list[int]:
    return [p["nodePort"] for p in svc["spec"]["ports"]]


async def test_two_api_servers_creating_services_at_once_never_share_an_address(tmp_path, etcd):
    """2 x 40 NodePort Services at once from two API servers on one etcd, in a /25 (108 addresses
    above the static band) and 85 node ports: every clusterIP and nodePort is distinct, and each
    is held by a reservation naming its Service. Without reservations (each server's scan sees
    neither the other's in-flight creates nor its own) this gave duplicates on every run tried."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2, node_ports="30000-30084") as (a, b):
        results = await asyncio.gather(*(srv.create(f"s{i}-{n}", type="NodePort")
                                         for n in range(40) for i, srv in enumerate((a, b))))
        assert [status for status, _ in results] == [201] * 80, [body for status, body in results if status != 201][:3]
        services = [body for _, body in results]
        ips = [svc["spec"]["clusterIP"] for svc in services]
        ports = [port for svc in services for port in _node_ports(svc)]
        shared = sorted({ip for ip in ips if ips.count(ip) > 1} | {p for p in ports if ports.count(p) > 1}, key=str)
        assert (len(set(ips)), len(set(ports)), shared) == (80, 80, [])
        ip_keys = await a.reservations(allocation.SERVICE_IPS)
        port_keys = await b.reservations(allocation.NODE_PORTS)
        for svc in services:
            holder = {"service": f"default/{svc['metadata']['name']}", "uid": svc["metadata"]["uid"]}
            assert {k: ip_keys[svc["spec"]["clusterIP"]][k] for k in holder} == holder
            assert {k: port_keys[str(_node_ports(svc)[0])][k] for k in holder} == holder
        # the kubernetes Service's 10.96.0.1, made by whichever server won at start, is held too
        status, kubernetes = await a.request("GET", f"{SERVICES}/kubernetes")
        assert status == 200 and ip_keys["10.96.0.1"]["uid"] == kubernetes["metadata"]["uid"]
        assert len(ip_keys) == 81 and len(port_keys) == 80


async def test_the_same_explicit_address_asked_by_two_servers_at_once_goes_to_one(tmp_path, etcd):
    """Neither server's scan can see the other's in-flight create: only the reservation decides."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2) as (a, b):
        for round_ in range(5):
            (sa, ba), (sb, bb) = await asyncio.gather(
                a.create(f"dns-a{round_}", clusterIP=f"10.96.0.{20 + round_}"),
                b.create(f"dns-b{round_}", clusterIP=f"10.96.0.{20 + round_}"))
            assert sorted((sa, sb)) == [201, 422], (ba, bb)
            loser = bb if sb == 422 else ba
            assert "provided IP is already allocated" in loser["message"], loser
        (sa, ba), (sb, bb) = await asyncio.gather(
            a.create("np-a", type="NodePort", ports=[{"port": 80, "nodePort": 30050}]),
            b.create("np-b", type="NodePort", ports=[{"port": 80, "nodePort": 30050}]))
        assert sorted((sa, sb)) == [201, 422], (ba, bb)
        assert "provided port is already allocated" in (bb if sb == 422 else ba)["message"]
        # the loser left nothing behind: its clusterIP reservation went back with the failure
        ip_keys = await a.reservations(allocation.SERVICE_IPS)
        names = {v["service"] for v in ip_keys.values()}
        assert ("default/np-a" in names) != ("default/np-b" in names), names


async def test_an_explicit_address_in_use_is_still_422(tmp_path, etcd):
    async with api_servers(tmp_path, _etcd_store(etcd), 2) as (a, b):
        status, _ = await a.create("dns", clusterIP="10.96.0.10", type="NodePort",
                                   ports=[{"port": 53, "nodePort": 30053}])
        assert status == 201
        status, body = await b.create("dns2", clusterIP="10.96.0.10")
        assert status == 422 and body["reason"] == "Invalid", body
        assert body["details"]["causes"][0]["field"] == "spec.clusterIPs"
        assert "failed to allocate IP 10.96.0.10: provided IP is already allocated" in body["message"]
        status, body = await b.create("np2", type="NodePort", ports=[{"port": 53, "nodePort": 30053}])
        assert status == 422 and "spec.ports[0].nodePort" in body["message"]
        assert "provided port is already allocated" in body["message"]
        # a taken name gives its reservations back: the address it asked for is free afterwards
        status, _ = await b.create("dns", clusterIP="10.96.0.11")
        assert status == 409
        status, body = await a.create("other", clusterIP="10.96.0.11")
        assert status == 201, body


async def test_deleting_a_service_frees_its_address_and_port_for_another_server(tmp_path, etcd):
    """A /28 has 13 addresses to give (.2-.14) and the range holds 3 node ports: fill both, one
    more is 422 "range is full"; once one Service is deleted its address and port are free at once
    (a reservation left behind would block them for the whole grace)."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2, cidr="10.96.0.0/28", node_ports="30000-30002") as (a, b):
        for n in range(3):
            assert (await a.create(f"np{n}", type="NodePort"))[0] == 201
        for n in range(10):
            assert (await b.create(f"ip{n}"))[0] == 201
        status, body = await a.create("one-more")
        assert status == 422 and "failed to allocate IP: range is full" in body["message"], body
        status, body = await b.create("port-more", type="NodePort", clusterIP="None")
        assert status == 422 and "failed to allocate port: range is full" in body["message"], body

        status, gone = await b.request("DELETE", f"{SERVICES}/np1")
        assert status == 200
        status, body = await a.create("one-more", type="NodePort")
        assert status == 201, body
        assert body["spec"]["clusterIP"] == gone["spec"]["clusterIP"]
        assert _node_ports(body) == _node_ports(gone)


async def test_an_update_that_drops_a_node_port_releases_it(tmp_path, etcd):
    async with api_servers(tmp_path, _etcd_store(etcd), 1, node_ports="30000-30000") as (a,):
        status, svc = await a.create("web", type="NodePort")
        assert status == 201 and _node_ports(svc) == [30000]
        svc["spec"]["type"] = "ClusterIP"
        del svc["spec"]["ports"][0]["nodePort"]
        status, body = await a.request("PUT", f"{SERVICES}/web", svc)
        assert status == 200, body
        assert "30000" not in await a.reservations(allocation.NODE_PORTS)
        status, body = await a.create("api", type="NodePort")
        assert status == 201 and _node_ports(body) == [30000], body


async def test_a_stale_reservation_is_reclaimed_after_the_grace_but_not_before(tmp_path, etcd):
    """A server that reserved and then crashed before creating its Service leaves a key naming a
    Service that does not exist: it blocks its address for the grace (a create may be in flight),
    then the next allocation that needs it deletes it and takes the address."""
    now = [1_800_000_000.0]
    async with api_servers(tmp_path, _etcd_store(etcd), 2, cidr="10.96.0.0/28", node_ports="30000-30000",
                           clock=lambda: now[0]) as (a, b):
        ctx = a.server.ctx
        ghost = {"service": "default/crashed", "uid": "0000-ghost", "reservedAt": ctx.now()}
        await a.store.create(allocation.ip_key("10.96.0.14"), ghost)
        await a.store.create(allocation.port_key(30000), ghost)
        for n in range(12):                                  # .2-.13: all but the ghost's .14
            assert (await a.create(f"s{n}"))[0] == 201
        now[0] += allocation.DEFAULT_RESERVATION_GRACE - 5
        status, body = await b.create("late")
        assert status == 422 and "range is full" in body["message"], body
        status, body = await b.create("late", clusterIP="None", type="NodePort", ports=[{"port": 80, "nodePort": 30000}])
        assert status == 422 and "provided port is already allocated" in body["message"], body

        now[0] += 10                                          # past the grace
        status, body = await b.create("late", type="NodePort")
        assert status == 201, body
        assert body["spec"]["clusterIP"] == "10.96.0.14" and _node_ports(body) == [30000]
        for prefix, key in ((allocation.SERVICE_IPS, "10.96.0.14"), (allocation.NODE_PORTS, "30000")):
            value = (await a.reservations(prefix))[key]
            assert (value["service"], value["uid"]) == ("default/late", body["metadata"]["uid"])


async def test_a_reservation_whose_service_is_live_is_never_reclaimed(tmp_path, etcd):
    """Past the grace, a key is still live while its Service uses the address, even if the scan
    of Services missed it (here: the Service's key is hidden from this server's scan)."""
    now = [1_800_000_000.0]
    async with api_servers(tmp_path, _etcd_store(etcd), 1, cidr="10.96.0.0/28", clock=lambda: now[0]) as (a,):
        status, held = await a.create("holder", clusterIP="10.96.0.5")
        assert status == 201
        now[0] += 10 * allocation.DEFAULT_RESERVATION_GRACE
        real_list = a.store.list

        async def list_without_holder(prefix, **kwargs):
            result = await real_list(prefix, **kwargs)
            if prefix.startswith("/registry/core/services/"):
                result = type(result)([i for i in result.items if not i.key.endswith("/holder")], result.revision)
            return result

        a.store.list = list_without_holder
        status, body = await a.create("thief", clusterIP="10.96.0.5")
        assert status == 422 and "already allocated" in body["message"], body


async def test_api_servers_starting_together_share_the_kubernetes_service(tmp_path, etcd):
    """Three servers start at once on one etcd: all start, one ``kubernetes`` Service on the
    CIDR's first address, held by a reservation with that Service's uid."""
    async with api_servers(tmp_path, _etcd_store(etcd), 3) as servers:
        for srv in servers:
            status, svc = await srv.request("GET", f"{SERVICES}/kubernetes")
            assert status == 200 and svc["spec"]["clusterIP"] == "10.96.0.1"
        reservation = (await servers[0].reservations(allocation.SERVICE_IPS))["10.96.0.1"]
        assert reservation["service"] == "default/kubernetes" and reservation["uid"] == svc["metadata"]["uid"]


async def test_reservations_on_the_tinydb_store(tmp_path):
    async with api_servers(tmp_path, None, 1, cidr="10.96.0.0/28", node_ports="30000-30000") as (a,):
        status, svc = await a.create("web", type="NodePort")
        assert status == 201
        assert set(await a.reservations(allocation.NODE_PORTS)) == {"30000"}
        assert (await a.create("api", type="NodePort"))[0] == 422
        assert (await a.request("DELETE", f"{SERVICES}/web"))[0] == 200
        assert await a.reservations(allocation.NODE_PORTS) == {}
        assert set(await a.reservations(allocation.SERVICE_IPS)) == {"10.96.0.1"}
        assert (await a.create("api", type="NodePort"))[0] == 201


def test_a_cidr_smaller_than_the_band_never_hands_out_its_broadcast_address():
    net = ipaddress.ip_network("10.96.0.0/28")          # 16 addresses, all of them band
    used = {f"10.96.0.{n}" for n in range(2, 14)}
    assert _free_cluster_ip(net, used) == "10.96.0.14"
    assert _free_cluster_ip(net, used | {"10.96.0.14"}) is None


async def test_updates_allocate_what_they_add_and_check_a_node_port_changed_by_hand(tmp_path, etcd):
    """A type change to NodePort gets a port (reserved); a nodePort moved by hand onto another
    Service's is 422 as on create; moved onto a free one, the old port is released. Two servers
    moving two Services onto one free port at once: one wins."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2, node_ports="30000-30009") as (a, b):
        status, web = await a.create("web")
        assert status == 201 and "nodePort" not in web["spec"]["ports"][0]
        status, web = await _merge_patch(a, "web", {"spec": {"type": "NodePort"}})
        assert status == 200, web
        (web_port,) = _node_ports(web)
        assert (await a.reservations(allocation.NODE_PORTS))[str(web_port)]["uid"] == web["metadata"]["uid"]

        status, api = await b.create("api", type="NodePort")
        assert status == 201
        status, body = await _merge_patch(b, "api", {"spec": {"ports": [{"port": 80, "nodePort": web_port}]}})
        assert status == 422 and "provided port is already allocated" in body["message"], body
        free = next(p for p in range(30000, 30010) if p not in (web_port, *_node_ports(api)))
        status, body = await _merge_patch(b, "api", {"spec": {"ports": [{"port": 80, "nodePort": free}]}})
        assert status == 200 and _node_ports(body) == [free], body
        ports = await a.reservations(allocation.NODE_PORTS)
        assert str(_node_ports(api)[0]) not in ports and ports[str(free)]["service"] == "default/api"

        target = next(p for p in range(30000, 30010) if p not in (web_port, free))
        results = await asyncio.gather(_merge_patch(a, "web", {"spec": {"ports": [{"port": 80, "nodePort": target}]}}),
                                       _merge_patch(b, "api", {"spec": {"ports": [{"port": 80, "nodePort": target}]}}))
        assert sorted(status for status, _ in results) == [200, 422], results
        winner = next(body for status, body in results if status == 200)
        assert (await a.reservations(allocation.NODE_PORTS))[str(target)]["uid"] == winner["metadata"]["uid"]


async def _merge_patch(srv: Server, name: str, patch: dict) -> tuple[int, dict]:
    async with srv.session.patch(f"{srv.server.url}{SERVICES}/{name}", json=patch,
                                 headers={"Content-Type": "application/merge-patch+json"}) as resp:
        return resp.status, await resp.json()


async def test_services_of_a_deleted_namespace_leave_their_addresses_free_once_it_is_gone(tmp_path, etcd):
    """Namespace termination removes its Services through ``lifecycle.remove_now``, which releases
    their keys at once (and a key left behind anyway would be reclaimed at once once the namespace
    is gone: nothing can be creating there)."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2) as (a, b):
        status, _ = await a.request("POST", "/api/v1/namespaces",
                                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}})
        assert status == 201
        status, body = await a.request("POST", "/api/v1/namespaces/doomed/services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 53, "nodePort": 30053}]}})
        assert status == 201, body
        assert (await a.request("DELETE", "/api/v1/namespaces/doomed"))[0] == 200
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await b.request("GET", "/api/v1/namespaces/doomed"))[0] != 404:
            assert loop.time() < deadline, "namespace doomed was never removed"
            await asyncio.sleep(0.2)
        assert "10.96.0.10" not in await a.reservations(allocation.SERVICE_IPS)
        assert "30053" not in await a.reservations(allocation.NODE_PORTS)
        status, body = await b.create("dns", type="NodePort", clusterIP="10.96.0.10", ports=[{"port": 53, "nodePort": 30053}])
        assert status == 201, body
        for prefix, key in ((allocation.SERVICE_IPS, "10.96.0.10"), (allocation.NODE_PORTS, "30053")):
            assert (await a.reservations(prefix))[key]["service"] == "default/dns"


async def test_a_foreground_deletion_releases_the_keys_when_the_service_goes(tmp_path, etcd):
    """Foreground deletion parks the Service behind its ``foregroundDeletion`` finalizer; the
    collector removes it (no dependents) through ``lifecycle.remove_now``: its keys go with it."""
    async with api_servers(tmp_path, _etcd_store(etcd), 2, node_ports="30000-30000") as (a, b):
        status, svc = await a.create("web", type="NodePort")
        assert status == 201 and _node_ports(svc) == [30000]
        status, body = await a.request("DELETE", f"{SERVICES}/web",
                                       {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Foreground"})
        assert status in (200, 202), body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (await b.request("GET", f"{SERVICES}/web"))[0] != 404:
            assert loop.time() < deadline, "the Service was never removed"
            await asyncio.sleep(0.1)
        assert "30000" not in await a.reservations(allocation.NODE_PORTS)
        assert svc["spec"]["clusterIP"] not in await a.reservations(allocation.SERVICE_IPS)
        status, body = await b.create("api", type="NodePort")
        assert status == 201 and _node_ports(body) == [30000], body
