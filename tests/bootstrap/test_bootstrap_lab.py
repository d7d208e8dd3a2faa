"""Bootstrap on real lab hosts over real SSH: inventory → running cluster → a rerun changes nothing.

The product is built into a wheelhouse from a snapshot of the source (the shared working tree may
change under the test), uploaded and installed into a venv on every host; the control plane and
node runtimes run under the provisioner's service supervisor (the lab has no systemd). Nodes are
checked with the real kubectl through the kubeconfig written back beside the inventory.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from clusterctl.bootstrap.cli import bootstrap_main
from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory

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


@pytest.mark.timeout(240)
def test_bootstrap_four_hosts_then_rerun_changes_nothing(lab_factory, tmp_path, source):
    lab = lab_factory(4)
    inv = write_lab_inventory(lab, tmp_path / "inv" / "inventory.ini", control_plane=["h1"], workers=["h2", "h3", "h4"],
                              host_vars={"h2": {"node_labels": "zone=a,disk=ssd"},
                                         "h3": {"node_labels": "zone=b", "node_taints": "dedicated=db:NoSchedule"}})
    first = tmp_path / "first.json"
    assert bootstrap_main(["-i", str(inv), "--source", str(source), "--log-json", str(first), "-e", "clusterctl_ready_timeout=60"]) == 0

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

    second = tmp_path / "second.json"
    assert bootstrap_main(["-i", str(inv), "--source", str(source), "--log-json", str(second)]) == 0
    assert {name: h["changed"] for name, h in recap(second).items()} == {"h1": 0, "h2": 0, "h3": 0, "h4": 0}
    assert all(h["failed"] == 0 for h in recap(second).values())


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
