"""Facts: the pure parser on captured outputs of FACTS_SCRIPT, and one real gathering on a lab host."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from clusterctl.provision.connection import ConnectionSpec, HostConnection
from clusterctl.provision.facts import FACTS_SCRIPT, gather_facts, parse_facts

DATA = Path(__file__).parent / "data" / "facts"


def test_ubuntu_vm_with_default_route():
    f = parse_facts((DATA / "ubuntu.txt").read_text())
    assert (f["hostname"], f["fqdn"], f["domain"], f["nodename"]) == ("web01", "web01.example.internal", "example.internal", "web01.example.internal")
    assert (f["os_family"], f["distribution"], f["distribution_version"], f["distribution_major_version"], f["distribution_release"]) == \
        ("Debian", "Ubuntu", "22.04", "22", "jammy")
    assert (f["architecture"], f["kernel"], f["system"]) == ("x86_64", "5.15.0-91-generic", "Linux")
    assert f["kernel_version"].startswith("#101-Ubuntu")
    assert (f["processor_vcpus"], f["processor_count"], f["processor_cores"], f["processor_threads_per_core"]) == (4, 1, 2, 2)
    assert (f["memtotal_mb"], f["memfree_mb"], f["swaptotal_mb"]) == (7960, 1024, 2047)
    assert f["memory_mb"]["nocache"]["free"] == 1024 + 100 + 2000
    assert f["all_ipv4_addresses"] == ["10.0.2.15", "10.0.2.99", "172.17.0.1"]
    assert f["all_ipv6_addresses"] == ["fd00::a00:27ff:fe4e:66a1", "fe80::a00:27ff:fe4e:66a1"]
    assert f["default_ipv4"] == {"interface": "enp0s3", "gateway": "10.0.2.2", "alias": "enp0s3", "address": "10.0.2.15",
                                 "netmask": "255.255.255.0", "network": "10.0.2.0", "broadcast": "10.0.2.255", "prefix": "24",
                                 "macaddress": "08:00:27:4e:66:a1", "mtu": 1500, "type": "ether"}
    assert f["default_ipv6"]["address"] == "fd00::a00:27ff:fe4e:66a1" and f["default_ipv6"]["gateway"] == "fe80::2"
    assert f["interfaces"] == ["docker0", "enp0s3", "lo"]
    assert f["enp0s3"]["ipv4_secondaries"][0]["address"] == "10.0.2.99" and f["docker0"]["active"] is True
    assert (f["service_mgr"], f["pkg_mgr"]) == ("systemd", "apt")
    assert f["date_time"]["epoch"] == "1700000000" and f["date_time"]["iso8601"] == "2023-11-14T22:13:20Z"
    assert f["date_time"]["date"] == "2023-11-14" and f["date_time"]["weekday_number"] == "2"
    assert (f["user_id"], f["user_uid"], f["user_dir"], f["user_shell"]) == ("vagrant", 1000, "/home/vagrant", "/bin/bash")
    assert f["env"]["LANG"] == "C.UTF-8" and f["mounts"][0] == {"device": "/dev/sda1", "mount": "/", "fstype": "ext4", "options": "rw,relatime"}
    assert f["python"] == {"executable": "/usr/bin/python3"} and f["uptime_seconds"] == 12345


def test_rocky_container_without_python_or_routes():
    f = parse_facts((DATA / "rocky.txt").read_text())
    assert (f["os_family"], f["distribution"], f["distribution_version"], f["distribution_major_version"]) == ("RedHat", "Rocky", "9.3", "9")
    assert f["distribution_release"] == "Blue Onyx" and f["architecture"] == "aarch64"
    assert (f["processor_vcpus"], f["processor_count"], f["processor_cores"]) == (8, 1, 8)
    assert f["default_ipv4"] == {} and f["all_ipv4_addresses"] == [] and f["interfaces"] == ["lo"]
    assert (f["service_mgr"], f["pkg_mgr"]) == ("service", "dnf")
    assert "python" not in f and f["virtualization_type"] == "docker"
    assert f["user_id"] == "root" and "user_dir" not in f


def test_facts_script_never_asks_the_network():
    # the FQDN comes from /etc/hosts: no DNS query may leave a lab host (network safety rule)
    for forbidden in ("hostname -f", "getent hosts", "nslookup", "dig ", "route get", "ping", "curl", "wget"):
        assert forbidden not in FACTS_SCRIPT


@pytest.mark.lab
async def test_gather_facts_on_a_lab_host_in_one_round_trip(lab3):
    h = lab3.hosts[1]
    conn = await HostConnection.open(ConnectionSpec(name=h.name, host=h.ip, private_key=str(lab3.key_path),
                                                    known_hosts=str(lab3.known_hosts_path)))
    calls = []
    real_run = conn.run

    async def counting_run(*a, **kw):
        calls.append(a[0][:20])
        return await real_run(*a, **kw)

    conn.run = counting_run
    try:
        f = await gather_facts(conn)
    finally:
        await conn.close()
    assert len(calls) == 1  # one round trip (no wall-clock bound: a loaded machine says nothing about round trips)
    assert f["hostname"] == h.name and f["nodename"] == h.name
    assert h.ip in f["all_ipv4_addresses"] and any(f[i].get("ipv4", {}).get("address") == h.ip for i in f["interfaces"])
    assert f["os_family"] == "Debian" and f["distribution"] == "Debian" and f["distribution_major_version"] == "12"
    assert f["architecture"] and f["kernel"] and f["processor_vcpus"] >= 1 and f["memtotal_mb"] > 0
    assert f["service_mgr"] != "systemd" and f["pkg_mgr"] == "apt" and f["user_id"] == "root"
    assert abs(int(f["date_time"]["epoch"]) - time.time()) < 60
