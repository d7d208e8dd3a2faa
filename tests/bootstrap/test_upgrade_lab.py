"""Rolling upgrade on real lab hosts: bootstrap version N, `clusterctl upgrade --to N+1`.

Version N+1 is the same source stamped with another version (the wheelhouse rewrites
``__version__``), so the node agents really restart on new code and report the new
kubeletVersion. Batches are checked from the ``--log-json`` event feed: with the default serial
(20% of 3 workers → 1) no two workers are ever cordoned at the same time, and each is uncordoned
only after its health gate passed.

While the upgrade runs, the seed app (3 replicas of a busybox httpd behind a NodePort, its image
from a registry on the controller's side) is requested in a loop by ``seed_app.BalancedClient``:
one request after another, each on a new connection to the next worker's NodePort in turn; a
connection that cannot be *opened* (the node's proxy restarting: refused, or a 1 s connect
timeout) is opened on the next worker instead — what an external load balancer with health checks
does — but a request whose connection was open is never retried: a reset, a short read, a
non-200 answer or a wrong body is a failed request. Zero failed requests are allowed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clusterctl.bootstrap.cli import upgrade_main
from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory
from tests.bootstrap.seed_app import (BalancedClient, GatewayRegistry, kubectl_apply, push_seed_images, seed_app,
                                     wait_for_page)
from tests.bootstrap.runlog import bootstrap
from tests.bootstrap.test_bootstrap_lab import in_host, kubectl_json, recap

pytestmark = [pytest.mark.lab]


def events(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def last_step(feed: list[dict], failure: str) -> str:
    """The upgrade step that finished last before a failure (its line starts with the time)."""
    when = float(failure.split()[0])
    done = [e for e in feed if e["event"] == "host_result" and e["time"] <= when]
    return f"{done[-1]['host']} {done[-1]['task']!r} {when - done[-1]['time']:.2f}s earlier" if done else "nothing yet"


def windows(feed: list[dict], host: str) -> tuple[float, float]:
    """When ``host`` was cordoned and when it was uncordoned again, from the event feed."""
    done = {e["task"]: e["time"] for e in feed if e["event"] == "host_result" and e["host"] == host
            and e.get("status") in ("ok", "changed")}
    return done["Cordon"], done["Uncordon"]


@pytest.mark.timeout(600)  # 139 s seen at load 10
def test_upgrade_moves_every_node_to_the_next_version_one_batch_at_a_time_without_a_failed_request(lab_factory, tmp_path):
    source = snapshot_source(tmp_path / "source")
    lab = lab_factory(4)
    registry = GatewayRegistry(lab, tmp_path / "registry")
    try:
        upgrade_under_load(lab, tmp_path, source, registry)
    finally:
        registry.stop()


def upgrade_under_load(lab, tmp_path: Path, source: Path, registry: GatewayRegistry) -> None:
    images = asyncio.run(push_seed_images(registry, tmp_path / "images"))
    inv = write_lab_inventory(lab, tmp_path / "inv" / "inventory.ini", control_plane=["h1"], workers=["h2", "h3", "h4"],
                              worker_vars=registry.worker_vars)
    bootstrap(["-i", str(inv), "--source", str(source), "-e", "clusterctl_ready_timeout=60"], tmp_path / "bootstrap.jsonl")
    kubeconfig = inv.parent / "kubeconfig"
    before = {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in kubectl_json(kubeconfig, "get", "nodes")["items"]}
    assert set(before.values()) == {"v1.32.0+clusterctl.0.1.0"} and len(before) == 3

    kubectl_apply(kubeconfig, seed_app(images["v1"], replicas=3), tmp_path / "seed.yaml")
    workers = [lab.host(w).ip for w in ("h2", "h3", "h4")]
    for ip in workers:
        wait_for_page(ip, "hello v1")
    client = BalancedClient(workers, expect={"hello v1"})
    client.start()
    log = tmp_path / "upgrade.json"
    try:
        upgraded = upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--log-json", str(log),
                                 "-e", "upgrade_min_healthy_s=1"])
    finally:
        client.stop()
    assert upgraded == 0
    print(f"during the upgrade: {len(client.answers)} answers, {len(client.failures)} failed, "
          f"connections passed over per node: {client.passed_over}")
    if client.failures:
        agent_logs = "\n".join(f"--- {h} node runtime log\n" + in_host(lab, h, "grep -v ' GET /' /var/log/clusterctl/clusterctl-node.log "
                                                                       "| tail -n 40").stdout for h in ("h2", "h3", "h4"))
        raise AssertionError(f"{len(client.failures)} failed of {len(client.answers) + len(client.failures)}:\n"
                             + "\n".join(f"{f}  (after: {last_step(events(log), f)})" for f in client.failures[:10])
                             + "\n" + agent_logs)
    # the upgrade ran under traffic: answers all through it, and while each worker was out (a
    # request count alone depends on the machine: 200 was the bar, and at load 15+ the client
    # thread, sharing this process's GIL with the upgrade, can make fewer)
    assert len(client.answers) >= 50, f"only {len(client.answers)} requests during the upgrade"

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
        out_from, out_until = windows(feed, host)
        assert any(out_from <= t <= out_until for t in client.answered_at), f"no request answered while {host} was upgraded"

    # a rerun finds nothing left to do
    again = tmp_path / "again.json"
    assert upgrade_main(["-i", str(inv), "--source", str(source), "--to", "0.1.1", "--log-json", str(again)]) == 0
    assert all(h["changed"] == 0 for h in recap(again).values())
