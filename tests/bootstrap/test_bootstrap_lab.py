"""Bootstrap on real lab hosts over real SSH: inventory → running cluster → the seed app answers
through a NodePort → a rerun changes nothing.

The product is built into a wheelhouse from a snapshot of the source (the shared working tree may
change under the test), uploaded and installed into a venv on every host; the control plane and
node runtimes run under the provisioner's service supervisor (the lab has no systemd). Nodes are
checked with the real kubectl through the kubeconfig written back beside the inventory. The workers
run the default ``bridge`` network (pod network, Service proxy, cluster DNS); the seed app's image
comes from a registry on the controller's side (``seed_app.GatewayRegistry``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
from pathlib import Path

import pytest

from clusterctl.bootstrap.cli import bootstrap_main, remove_node_main
from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory
from tests.bootstrap.runlog import bootstrap
from tests.bootstrap.seed_app import GatewayRegistry, kubectl_apply, push_seed_images, seed_app, wait_for_page
from tests.bootstrap.test_native_shipping import assert_workers_run_the_shipped_shim

pytestmark = [pytest.mark.lab]


def kubectl_json(kubeconfig: Path, *args: str) -> dict:
    out = subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args, "-o", "json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def recap(log: Path) -> dict:
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in events if e["event"] == "recap"][-1]["hosts"]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return snapshot_source(tmp_path_factory.mktemp("source"))


def in_host(lab, host: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(lab.exec_argv(host, "sh", "-c", script), capture_output=True, text=True, timeout=60)


#: one DNS A query over UDP, printing the answers' addresses (lab hosts have no dig; python3 is there)
DNS_QUERY = """
import socket, struct, sys
name, server = sys.argv[1], sys.argv[2]
query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0\\0\\1\\0\\1"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
s.sendto(query, (server, 53))
answer = s.recv(4096)
count = struct.unpack(">H", answer[6:8])[0]
at = len(query)
for _ in range(count):
    at += 2  # a compressed pointer to the name
    rtype, _cls, _ttl, length = struct.unpack(">HHIH", answer[at:at + 10])
    at += 10
    if rtype == 1:
        print(socket.inet_ntoa(answer[at:at + length]))
    at += length
"""

LABELS = {"h2": {"node_labels": "zone=a,disk=ssd"}, "h3": {"node_labels": "zone=b", "node_taints": "dedicated=db:NoSchedule"}}


@pytest.mark.timeout(480)  # 97 s seen at load 17
def test_bootstrap_four_hosts_seed_app_rerun_add_a_fifth_and_remove_it(lab_factory, tmp_path, source):
    lab = lab_factory(5)
    registry = GatewayRegistry(lab, tmp_path / "registry")
    try:
        bootstrap_serve_rerun_add_remove(lab, tmp_path, source, registry)
    finally:
        registry.stop()


def bootstrap_serve_rerun_add_remove(lab, tmp_path: Path, source: Path, registry: GatewayRegistry) -> None:
    images = asyncio.run(push_seed_images(registry, tmp_path / "images"))
    inv = write_lab_inventory(lab, tmp_path / "inv" / "inventory.ini", control_plane=["h1"], workers=["h2", "h3", "h4"],
                              host_vars=LABELS, worker_vars=registry.worker_vars)
    first = tmp_path / "first.json"
    bootstrap(["-i", str(inv), "--source", str(source), "-e", "clusterctl_ready_timeout=60"], first)

    kubeconfig = inv.parent / "kubeconfig"
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert sorted(nodes) == ["h2", "h3", "h4"]
    for node in nodes.values():
        assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    assert nodes["h2"]["metadata"]["labels"]["zone"] == "a"
    assert nodes["h2"]["metadata"]["labels"]["disk"] == "ssd"
    assert nodes["h3"]["metadata"]["labels"]["zone"] == "b"
    assert nodes["h3"]["spec"]["taints"] == [{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]
    assert "zone" not in nodes["h4"]["metadata"]["labels"]
    assert sum(h["changed"] for h in recap(first).values()) > 0

    # the seed app: pods on the untainted workers, answering through the NodePort of every worker
    kubectl_apply(kubeconfig, seed_app(images["v1"], replicas=2), tmp_path / "seed.yaml")
    for worker in ("h2", "h3", "h4"):
        wait_for_page(lab.host(worker).ip, "hello v1")
    pods = kubectl_json(kubeconfig, "get", "pods", "-l", "app=web")["items"]
    assert len(pods) == 2 and {p["spec"]["nodeName"] for p in pods} <= {"h2", "h4"}
    assert all(p["status"]["podIP"].startswith("10.244.") for p in pods)
    # the Service's ClusterIP and its cluster DNS name answer on a worker without a pod of it (h3)
    cluster_ip = kubectl_json(kubeconfig, "get", "service", "web")["spec"]["clusterIP"]
    fetched = in_host(lab, "h3", f"python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{cluster_ip}/', timeout=20).read().decode(), end='')\"")
    assert fetched.stdout == "hello v1\n", fetched.stderr
    looked_up = in_host(lab, "h3", f"python3 -c {shlex.quote(DNS_QUERY)} web.default.svc.cluster.local 10.96.0.10")
    assert looked_up.stdout.split() == [cluster_ip], looked_up.stdout + looked_up.stderr
    # the workers' agents run the ccl-shim bootstrap built on the controller and shipped (none compiled it)
    assert_workers_run_the_shipped_shim(lab, ["h2", "h3", "h4"], source)

    second = tmp_path / "second.json"
    bootstrap(["-i", str(inv), "--source", str(source)], second)
    assert {name: h["changed"] for name, h in recap(second).items()} == {"h1": 0, "h2": 0, "h3": 0, "h4": 0}
    assert all(h["failed"] == 0 for h in recap(second).values())

    # a fifth host added to the inventory joins on the next run; nothing else changes
    write_lab_inventory(lab, inv, control_plane=["h1"], workers=["h2", "h3", "h4", "h5"], host_vars=LABELS,
                        worker_vars=registry.worker_vars)
    third = tmp_path / "third.json"
    bootstrap(["-i", str(inv), "--source", str(source), "-e", "clusterctl_ready_timeout=60"], third)
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert sorted(nodes) == ["h2", "h3", "h4", "h5"]
    assert any(c["type"] == "Ready" and c["status"] == "True" for c in nodes["h5"]["status"]["conditions"])
    changed = {name: h["changed"] for name, h in recap(third).items()}
    assert changed["h2"] == changed["h3"] == changed["h4"] == 0 and changed["h5"] > 0

    # remove-node drains h5, deletes its Node and uninstalls it
    assert remove_node_main(["-i", str(inv), "h5"]) == 0
    assert sorted(n["metadata"]["name"] for n in kubectl_json(kubeconfig, "get", "nodes")["items"]) == ["h2", "h3", "h4"]
    gone = in_host(lab, "h5", "ls -d /opt/clusterctl /etc/clusterctl/node-runtime.yaml /var/lib/clusterctl/node 2>&1; "
                              "ps -eo args | grep -q '[n]ode-runtime --config' && echo RUNNING")
    assert "No such file" in gone.stdout and gone.stdout.count("No such file") == 3 and "RUNNING" not in gone.stdout


@pytest.mark.timeout(120)
def test_preflight_stops_before_changing_anything(lab3, tmp_path, source, capsys):
    inv = write_lab_inventory(lab3, tmp_path / "inventory.ini", control_plane=["h1"], workers=["h2", "h3"])
    log = tmp_path / "log.json"
    # a controller whose wheels are for another architecture: every host must refuse
    rc = bootstrap_main(["-i", str(inv), "--source", str(source), "--log-json", str(log), "-e", "clusterctl_arch=s390x"])
    assert rc == 2
    results = [json.loads(line) for line in log.read_text().splitlines()]
    failures = [e for e in results if e["event"] == "host_result" and e.get("status") == "failed"]
    assert {e["host"] for e in failures} == {"h1", "h2", "h3"}
    out = capsys.readouterr().out
    for host in ("h1", "h2", "h3"):
        assert f"{host} cannot run clusterctl: PROBLEM: architecture x86_64 differs from the wheelhouse's s390x" in out
    assert not [e for e in results if e["event"] == "play_start" and e["play"].startswith("Install")]
    for host in ("h1", "h2", "h3"):
        out = subprocess.run(lab3.exec_argv(host, "ls", "/opt/clusterctl"), capture_output=True, text=True)
        assert out.returncode != 0, f"{host} has /opt/clusterctl: {out.stdout}"
