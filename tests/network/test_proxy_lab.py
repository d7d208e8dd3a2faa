"""The Service proxy on two lab nodes: pods on both, a ClusterIP and a NodePort in front.

Each node runs the real ``BridgeNetwork`` and a real ``ServiceProxy`` (fed the Service and Pod
objects from a file, as its informers would feed it); clients are a pod, and this machine's
namespace (outside the cluster) for the NodePort.
"""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.network.test_bridge import HOST_PYTHON, NETCTL, in_pod, netctl, run

CLUSTER_IP = "10.96.0.20"
DNS_IP = "10.96.0.10"
NODE_PORT = 30080


def pod(name, ip, ready=True):
    return {"metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}]},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


SERVICE = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"type": "NodePort", "clusterIP": CLUSTER_IP, "selector": {"app": "web"},
                    "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": NODE_PORT},
                              {"name": "alt", "port": 81, "targetPort": 8080}]}}


class Proxies:
    def __init__(self, lab, hosts, mode: str = "splice"):
        self.lab, self.procs, self.pids = lab, {}, {}
        for h in hosts:
            args = {"node": h, "ip": lab.host(h).ip, "cidr": "-", "state": "/var/lib/clusterctl/net-test",
                    "objects": "/var/lib/clusterctl/objects.json", "dns": DNS_IP, "mode": mode}
            args["cidr"] = {"h1": "10.244.1.0/24", "h2": "10.244.2.0/24"}[h]
            self.procs[h] = subprocess.Popen(lab.exec_argv(h, HOST_PYTHON, NETCTL, "serve", json.dumps(args)),
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def publish(self, services, pods):
        for h, proc in self.procs.items():
            path = self.lab.host(h).data_dir / "objects.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"services": services, "pods": pods}))
            tmp.rename(path)
        for h, proc in self.procs.items():
            deadline = time.monotonic() + 60      # the first publish waits for the proxy to start
            while time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.5)
                line = proc.stdout.readline() if ready else ""
                if line.startswith("ready"):
                    self.pids[h] = line.split()[2]     # the proxy's pid in the host (nsenter forks it)
                    break
                assert proc.poll() is None, proc.stderr.read()
            else:
                raise AssertionError(f"proxy on {h} did not apply the objects")

    def stop(self):
        for h in self.procs:
            run(self.lab, h, "kill", "-TERM", self.pids[h])
        for h, proc in self.procs.items():
            proc.wait(60)
            assert proc.returncode == 0, (h, proc.returncode, proc.stderr.read())


def get(lab, host, netns, url, timeout: int = 20):
    argv = ("timeout", str(timeout), "busybox", "wget", "-q", "-O", "-", url)
    r = in_pod(lab, host, netns, *argv, check=False) if netns else run(lab, host, *argv, check=False)
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def get_outside(ip, port):
    r = subprocess.run(["timeout", "20", "busybox", "wget", "-q", "-O", "-", f"http://{ip}:{port}/"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else f"error: {r.stderr.strip()}"


def pumps_in(lab, host) -> list[str]:
    """The ccl-pump processes running in a lab host (its own PID namespace)."""
    return run(lab, host, "sh", "-c", "pgrep -x ccl-pump || true").stdout.split()


@pytest.mark.lab
@pytest.mark.parametrize("mode", ["splice", "cpump"])
def test_cluster_ip_and_node_port_reach_ready_pods_on_every_node(lab_factory, mode):
    lab = lab_factory(2)
    netctl(lab, "h1", "start")
    netctl(lab, "h2", "start")
    p1 = netctl(lab, "h1", "setup", uid="p1p1p1p1-1")
    p2 = netctl(lab, "h2", "setup", uid="p2p2p2p2-1")
    p3 = netctl(lab, "h2", "setup", uid="p3p3p3p3-1")
    client = netctl(lab, "h1", "setup", uid="c1c1c1c1-1")
    for host, p, text in (("h1", p1, "p1"), ("h2", p2, "p2"), ("h2", p3, "p3")):
        in_pod(lab, host, p["netns"], "sh", "-c", f"mkdir -p /tmp/www-{text} && echo {text} > /tmp/www-{text}/index.html "
               f"&& busybox httpd -p 8080 -h /tmp/www-{text}")
    proxies = Proxies(lab, ["h1", "h2"], mode)
    try:
        proxies.publish([SERVICE], [pod("p1", p1["ip"]), pod("p2", p2["ip"]), pod("p3", p3["ip"], ready=False)])
        # pod -> ClusterIP (both ports; targetPort by name and by number): both ready pods, never the unready one
        seen = {get(lab, "h1", client["netns"], f"http://{CLUSTER_IP}:{port}/") for port in (80, 81) for _ in range(4)}
        assert seen == {"p1", "p2"}, seen
        # pod -> DNS name (short form through the search path) -> ClusterIP -> pods
        run(lab, "h1", "sh", "-c", f"mkdir -p /etc/netns/{Path(client['netns']).name} && printf "
            f"'nameserver {DNS_IP}\\nsearch default.svc.cluster.local svc.cluster.local cluster.local\\noptions ndots:5\\n' "
            f"> /etc/netns/{Path(client['netns']).name}/resolv.conf")
        code = ("import socket, urllib.request\n"
                "print(socket.gethostbyname('web'), socket.gethostbyname('web.default.svc.cluster.local'))\n"
                "print(urllib.request.urlopen('http://web/', timeout=30).read().decode().strip())\n"
                "try:\n socket.gethostbyname('example.com')\nexcept OSError as e:\n print('refused', type(e).__name__)")
        out = in_pod(lab, "h1", client["netns"], "python3", "-c", code).stdout.split("\n")
        assert out[0] == f"{CLUSTER_IP} {CLUSTER_IP}" and out[1] in ("p1", "p2") and out[2].startswith("refused"), out
        # outside the cluster -> NodePort on either node reaches pods on both nodes
        for node in ("h1", "h2"):
            seen = {get_outside(lab.host(node).ip, NODE_PORT) for _ in range(4)}
            assert seen == {"p1", "p2"}, (node, seen)
        # p2 stops being ready: no new connection goes to it
        proxies.publish([SERVICE], [pod("p1", p1["ip"]), pod("p2", p2["ip"], ready=False), pod("p3", p3["ip"], ready=False)])
        assert {get_outside(lab.host("h2").ip, NODE_PORT) for _ in range(4)} == {"p1"}
        # a ready pod whose IP vanished (deleted without notice): the proxy retries another one
        netctl(lab, "h1", "teardown", uid="p1p1p1p1-1")
        proxies.publish([SERVICE], [pod("p1", p1["ip"]), pod("p3", p3["ip"])])
        assert {get_outside(lab.host("h1").ip, NODE_PORT) for _ in range(4)} == {"p3"}
        # no ready endpoint: the ClusterIP fails at once, on the node
        proxies.publish([SERVICE], [])
        r = in_pod(lab, "h1", client["netns"], "timeout", "30", "busybox", "wget", "-q", "-O", "-", f"http://{CLUSTER_IP}/", check=False)
        # refused or reset by the node's proxy (wget says so), not left hanging until `timeout`
        # kills it (rc 124, nothing said)
        assert r.returncode not in (0, 124) and r.stderr.strip(), (r.returncode, r.stdout, r.stderr)
        if mode == "cpump":                         # the bytes went through each node's ccl-pump
            assert [len(pumps_in(lab, h)) for h in ("h1", "h2")] == [1, 1]
    finally:
        proxies.stop()
    for host in ("h1", "h2"):                       # and it went with the proxy
        assert pumps_in(lab, host) == []
    for host in ("h1", "h2"):
        addrs = run(lab, host, "ip", "addr").stdout
        assert CLUSTER_IP not in addrs and DNS_IP not in addrs
        assert f":{NODE_PORT}" not in run(lab, host, "ss", "-ltn").stdout
