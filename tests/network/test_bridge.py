"""The real pod network in lab hosts: bridge + veth + pod CIDR addresses + host-gw routes.

Each lab host plays a node; ``node_runtime/network/standalone.py`` runs ``BridgeNetwork`` inside it (its own network
namespace), and busybox ``httpd``/``wget`` run inside the pod namespaces it creates.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

NETCTL = str(Path(__file__).resolve().parents[2] / "node_runtime" / "network" / "standalone.py")
HOST_PYTHON = "/usr/bin/python3"   # the venv lives under /root, which a lab host does not see
CIDRS = {"h1": "10.244.1.0/24", "h2": "10.244.2.0/24"}


def run(lab, host, *argv, check=True, timeout=60):
    r = subprocess.run(lab.exec_argv(host, *argv), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{host}: {argv} failed ({r.returncode}): {r.stderr}{r.stdout}")
    return r


def netctl(lab, host, action, **extra):
    h = lab.host(host)
    nodes = [{"metadata": {"name": x.name}, "spec": {"podCIDR": CIDRS[x.name]},
              "status": {"addresses": [{"type": "InternalIP", "address": x.ip}]}} for x in lab.hosts if x.name in CIDRS]
    args = {"node": host, "ip": h.ip, "cidr": CIDRS[host], "state": "/var/lib/clusterctl/net-test", "nodes": nodes, **extra}
    out = run(lab, host, HOST_PYTHON, NETCTL, action, json.dumps(args)).stdout
    return json.loads(out.strip().splitlines()[-1])


def in_pod(lab, host, netns, *argv, check=True, timeout=60):
    return run(lab, host, "ip", "netns", "exec", Path(netns).name, *argv, check=check, timeout=timeout)


@pytest.mark.lab
def test_pods_reach_each_other_across_nodes_and_nothing_is_left(lab_factory):
    lab = lab_factory(2)
    routes = netctl(lab, "h1", "start")["routes"]
    assert routes == {"10.244.2.0/24": lab.host("h2").ip}
    netctl(lab, "h2", "start")
    a = netctl(lab, "h1", "setup", uid="aaaaaaaa-1")
    b = netctl(lab, "h2", "setup", uid="bbbbbbbb-1")
    c = netctl(lab, "h1", "setup", uid="cccccccc-1")
    assert a["ip"].startswith("10.244.1.") and c["ip"].startswith("10.244.1.") and b["ip"].startswith("10.244.2.")
    assert len({a["ip"], b["ip"], c["ip"]}) == 3
    assert netctl(lab, "h1", "setup", uid="aaaaaaaa-1")["ip"] == a["ip"]       # idempotent (agent restart)

    # the same port in two pods on one node, and one on the other node: each pod has its own IP
    for host, pod, text in (("h2", b, "from-b"), ("h1", c, "from-c"), ("h1", a, "from-a")):
        in_pod(lab, host, pod["netns"], "sh", "-c", f"mkdir -p /tmp/www-{text} && echo {text} > /tmp/www-{text}/index.html "
               f"&& busybox httpd -p 8080 -h /tmp/www-{text}")
    assert in_pod(lab, "h1", a["netns"], "timeout", "30", "busybox", "wget", "-q", "-O", "-", f"http://{b['ip']}:8080/").stdout == "from-b\n"
    assert in_pod(lab, "h1", a["netns"], "timeout", "30", "busybox", "wget", "-q", "-O", "-", f"http://{c['ip']}:8080/").stdout == "from-c\n"
    assert in_pod(lab, "h2", b["netns"], "timeout", "30", "busybox", "wget", "-q", "-O", "-", f"http://{a['ip']}:8080/").stdout == "from-a\n"
    # the node reaches its pods and the other node's pods too
    assert run(lab, "h2", "timeout", "30", "busybox", "wget", "-q", "-O", "-", f"http://{c['ip']}:8080/").stdout == "from-c\n"

    # a pod IP of a node nobody has, and a service IP nobody serves: fail at once, locally
    # (a packet sent on toward a gateway would leave wget hanging until `timeout` kills it, rc 124
    # and nothing said; the kernel's own refusal is immediate and named)
    for target in ("10.244.77.7", "10.96.200.1"):
        r = in_pod(lab, "h1", a["netns"], "timeout", "20", "busybox", "wget", "-q", "-O", "-", f"http://{target}:80/", check=False)
        assert r.returncode not in (0, 124), (target, r.returncode, r.stderr)
        assert "unreachable" in r.stderr.lower() or "no route" in r.stderr.lower(), r.stderr

    # teardown: namespace, veth and address go; the address is reused only after the others
    netctl(lab, "h2", "teardown", uid="bbbbbbbb-1")
    assert Path(b["netns"]).name not in run(lab, "h2", "ip", "netns", "list").stdout
    r = in_pod(lab, "h1", a["netns"], "timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://{b['ip']}:8080/", check=False)
    assert r.returncode != 0
    d = netctl(lab, "h2", "setup", uid="dddddddd-1")
    assert d["ip"] != b["ip"] and d["ip"].startswith("10.244.2.")

    # agent stop with every pod gone: nothing of ours is left, the lab's own guards stay
    for host, uid in (("h1", "aaaaaaaa-1"), ("h1", "cccccccc-1"), ("h2", "dddddddd-1")):
        netctl(lab, host, "teardown", uid=uid)
    for host in ("h1", "h2"):
        netctl(lab, host, "close")
        links = run(lab, host, "ip", "-br", "link").stdout
        assert "cc" not in " ".join(line.split()[0] for line in links.splitlines() if not line.startswith(("lo", "eth0"))), links
        assert run(lab, host, "ip", "netns", "list").stdout.strip() == ""
        routes = run(lab, host, "ip", "route").stdout
        assert "10.244.1.0/24" not in routes and "10.244.2.0/24" not in routes, routes
        assert "unreachable 10.244.0.0/16" in routes and "unreachable 10.96.0.0/12" in routes
        leases = json.loads(run(lab, host, "cat", "/var/lib/clusterctl/net-test/ipam.json").stdout)["leases"]
        assert leases == {}


@pytest.mark.lab
def test_refuses_cluster_cidr_overlapping_a_host_route(lab_factory):
    lab = lab_factory(1)
    run(lab, "h1", "ip", "route", "add", "10.244.5.0/24", "dev", "eth0")
    h = lab.host("h1")
    args = {"node": "h1", "ip": h.ip, "cidr": "10.244.1.0/24", "state": "/var/lib/clusterctl/net-overlap"}
    r = run(lab, "h1", HOST_PYTHON, NETCTL, "start", json.dumps(args), check=False)
    assert r.returncode != 0
    assert "10.244.0.0/16 overlaps the host route 10.244.5.0/24 dev eth0" in r.stderr
    links = run(lab, "h1", "ip", "-br", "link").stdout  # names only: a MAC address may contain "cc" too
    assert not [line.split()[0] for line in links.splitlines() if line.split() and line.split()[0].startswith("cc")], links


@pytest.mark.lab
def test_pods_keep_reaching_their_gateway_while_other_pods_come_and_go(lab_factory):
    """The bridge's MAC is fixed. Left to itself a bridge takes its lowest port MAC and changes
    it when that port goes: every pod that had resolved its gateway then sent its answers to a
    MAC nobody had, for seconds (a pod in a rollout acknowledged a request and never answered)."""
    from node_runtime.network.bridge import bridge_mac
    lab = lab_factory(1)
    netctl(lab, "h1", "start")
    pods = {f"{i:08x}-gw": netctl(lab, "h1", "setup", uid=f"{i:08x}-gw") for i in range(6)}
    bridge = next(line.split()[0] for line in run(lab, "h1", "ip", "-br", "link").stdout.splitlines()
                  if line.startswith("cc"))
    gateway = "10.244.1.1"
    for pod in pods.values():                          # every pod resolves the gateway's MAC
        in_pod(lab, "h1", pod["netns"], "busybox", "ping", "-c", "1", "-W", "10", gateway)
    for uid in sorted(pods)[:-1]:                      # ports go, the lowest-MAC one among them
        netctl(lab, "h1", "teardown", uid=uid)
        del pods[uid]
        mac = json.loads(run(lab, "h1", "ip", "-j", "link", "show", bridge).stdout)[0]["address"]
        assert mac == bridge_mac(bridge)
        # no waiting for an ARP entry to expire: a REACHABLE entry for a MAC that went stays in use
        # for 15-45 s without being checked again, so 5 s (for a loaded machine) still tells
        for pod in pods.values():
            r = in_pod(lab, "h1", pod["netns"], "busybox", "ping", "-c", "1", "-W", "5", gateway, check=False)
            assert r.returncode == 0, f"{pod['ip']} lost its gateway after a port left: {r.stdout}{r.stderr}"
    for uid in list(pods):
        netctl(lab, "h1", "teardown", uid=uid)
    netctl(lab, "h1", "close")
