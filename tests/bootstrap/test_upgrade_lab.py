"""Rolling upgrade on real lab hosts: bootstrap version N, `clusterctl upgrade --to N+1`.

Version N+1 is the same source stamped with another version (the wheelhouse rewrites
``__version__``), so the node agents really restart on new code and report the new
kubeletVersion. Batches are checked from the ``--log-json`` event feed: with the default serial
(20% of 3 workers → 1) no two workers are ever cordoned at the same time, and each is uncordoned
only after its health gate passed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clusterctl.bootstrap.cli import bootstrap_main, upgrade_main
from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory
from tests.bootstrap.test_bootstrap_lab import kubectl_json, recap

pytestmark = [pytest.mark.lab]


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def windows(feed: list[dict], host: str) -> tuple[float, float]:
    """When ``host`` was cordoned and when it was uncordoned again, from the event feed."""
    done = {e["task"]: e["time"] for e in feed if e["event"] == "host_result" and e["host"] == host
            and e.get("status") in ("ok", "changed")}
    return done["Cordon"], done["Uncordon"]


@pytest.mark.timeout(300)
def test_upgrade_moves_every_node_to_the_next_version_one_batch_at_a_time(lab_factory, tmp_path):
    source = snapshot_source(tmp_path / "source")
    lab = lab_factory(4)
    inv = write_lab_inventory(lab, tmp_path / "inv" / "inventory.ini", control_plane=["h1"], workers=["h2", "h3", "h4"])
    assert bootstrap_main(["-i", str(inv), "--source", str(source), "-e", "clusterctl_ready_timeout=60"]) == 0
    kubeconfig = inv.parent / "kubeconfig"
    before = {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert set(before.values()) == {"v1.32.0+clusterctl.0.1.0"} and len(before) == 3

    log = tmp_path / "upgrade.json"
    assert upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--log-json", str(log),
                         "-e", "upgrade_min_healthy_s=1"]) == 0

    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == \
        {name: "v1.32.0+clusterctl.0.1.1" for name in before}
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    version = kubectl_json(kubeconfig, "version")
    assert version["serverVersion"]["gitVersion"].endswith("+clusterctl.0.1.1")

    feed = events(log)
    spans = sorted(windows(feed, h) for h in ("h2", "h3", "h4"))
    for (_, uncordoned), (next_cordoned, _) in zip(spans, spans[1:]):
        assert uncordoned <= next_cordoned, f"two workers were drained at once: {spans}"
    gates = {e["host"]: e["time"] for e in feed if e["event"] == "host_result"
             and e["task"].startswith("Health gate") and e.get("status") == "ok"}
    for host in ("h2", "h3", "h4"):
        assert windows(feed, host)[0] < gates[host] < windows(feed, host)[1]

    # a rerun finds nothing left to do
    again = tmp_path / "again.json"
    assert upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--log-json", str(again)]) == 0
    assert all(h["changed"] == 0 for h in recap(again).values())
