"""A worker's network is cut in the middle of a rolling upgrade.

Workers go one at a time (serial 1) with ``max_fail_percentage`` 0: when h3 is cut while h2 is
being upgraded, h3's batch fails (its commands time out: ``--timeout 45``, which the staged install stays well under), so the upgrade stops
there exactly as the setting says — h4 is never cordoned and stays on the old version. After
``lab heal`` the same command is run again and finishes the job: every node on N+1, none
left cordoned, h2 (done already) untouched.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from clusterctl.bootstrap.cli import upgrade_main
from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory
from tests.bootstrap.runlog import bootstrap
from tests.bootstrap.test_bootstrap_lab import kubectl_json, recap
from tests.bootstrap.test_upgrade_lab import events

pytestmark = [pytest.mark.lab]


def cut_when_draining_starts(lab, log: Path, victim: str, done: threading.Event) -> threading.Thread:
    """Cut ``victim`` as soon as the feed shows the first worker being cordoned."""
    def watch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not done.is_set():
            if log.exists() and any(e["event"] == "task_start" and e["task"] == "Cordon" for e in events(log)):
                lab.cut(victim)
                return
            time.sleep(0.05)
    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.timeout(600)  # 139 s seen at load 10
def test_cut_worker_stops_the_upgrade_per_max_fail_percentage_and_a_rerun_finishes(lab_factory, tmp_path):
    source = snapshot_source(tmp_path / "source")
    lab = lab_factory(4)
    inv = write_lab_inventory(lab, tmp_path / "inv" / "inventory.ini", control_plane=["h1"], workers=["h2", "h3", "h4"])
    bootstrap(["-i", str(inv), "--source", str(source), "-e", "clusterctl_ready_timeout=60"], tmp_path / "bootstrap.jsonl")
    kubeconfig = inv.parent / "kubeconfig"

    log = tmp_path / "upgrade.json"
    done = threading.Event()
    watcher = cut_when_draining_starts(lab, log, "h3", done)
    rc = upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--serial", "1",
                       "--max-fail-percentage", "0", "--log-json", str(log), "--timeout", "45",
                       "-e", "upgrade_min_healthy_s=1"])
    done.set()
    watcher.join()
    assert rc != 0
    feed = events(log)
    cordoned = {e["host"] for e in feed if e["event"] == "host_result" and e["task"] == "Cordon" and e.get("status") == "changed"}
    assert cordoned == {"h2"}, cordoned
    failed = {e["host"] for e in feed if e["event"] == "host_result" and e.get("status") in ("failed", "unreachable")}
    assert failed == {"h3"}, failed
    versions = {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert versions["h2"].endswith("+clusterctl.0.1.1")
    assert versions["h4"].endswith("+clusterctl.0.1.0")

    lab.heal("h3")
    again = tmp_path / "again.json"
    assert upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--serial", "1",
                         "--log-json", str(again), "-e", "upgrade_min_healthy_s=1"]) == 0
    nodes = kubectl_json(kubeconfig, "get", "nodes")["items"]
    assert {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == \
        {h: "v1.32.0+clusterctl.0.1.1" for h in ("h2", "h3", "h4")}
    assert not any(n["spec"].get("unschedulable") for n in nodes)
    assert recap(again)["h2"]["changed"] == 0
