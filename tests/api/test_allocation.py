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
