"""Node IPAM and node lifecycle: a dead node's pods move; a control-plane outage evicts nothing."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from clusterctl.api.testing import start_control_plane
from clusterctl.client.rest import ApiClient
from clusterctl.controllers import pods as P
from clusterctl.controllers.nodelifecycle import UNREACHABLE, NodeLifecycleController
from tests.controllers.conftest import Env
from tests.controllers.test_deployment import deployment, rolled_out

FAST_TOLERATIONS = [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1},
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1}]


async def test_every_node_gets_its_own_pod_cidr(env):
    await env.start(controllers=("nodeipam",), cluster_cidr="10.250.0.0/22", node_cidr_mask_size=24)
    await env.add_nodes("ipam-", 3)

    async def cidrs():
        nodes = (await env.api.list("nodes"))["items"]
        got = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in nodes}
        return got if all(got.values()) and len(got) == 3 else None
    got = await env.wait_for("pod CIDRs", cidrs)
    assert sorted(got.values()) == ["10.250.0.0/24", "10.250.1.0/24", "10.250.2.0/24"]
    for name, cidr in got.items():
        node = await env.api.get("nodes", name)
        assert node["spec"]["podCIDRs"] == [cidr]
    # a deleted node's range is reused by the next node
    freed = got["ipam-1"]
    await env.api.delete("nodes", "ipam-1")
    await env.add_nodes("ipam-late-", 2)

    async def late():
        nodes = {n["metadata"]["name"]: (n.get("spec") or {}).get("podCIDR") for n in (await env.api.list("nodes"))["items"]}
        return nodes if nodes.get("ipam-late-0") and nodes.get("ipam-late-1") else None
    nodes = await env.wait_for("late nodes", late)
    assert freed in (nodes["ipam-late-0"], nodes["ipam-late-1"])
    assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("10.250.0.0/22")) for c in nodes.values())
    assert len(set(nodes.values())) == len(nodes)


async def test_dead_node_pods_are_recreated_elsewhere_after_grace_and_toleration(env):
    # grace 5 s against 0.2 s renewals: a live node's heartbeat held up by a loaded machine must not look like death
    # (the renewals and the monitor share this event loop: after a stall the monitor can look before they land)
    grace = 5.0
    await env.start(controllers=("replicaset", "deployment", "nodelifecycle"), node_monitor_period=0.1, node_monitor_grace_period=grace)
    sim = await env.add_nodes("nl-", 3, renew_interval=0.2)
    d = deployment("survivor", "img:v1", replicas=3)
    d["spec"]["template"]["spec"]["tolerations"] = FAST_TOLERATIONS
    await env.api.create(d)
    await rolled_out(env, "survivor", "img:v1")
    before = await env.pods(selector="app=survivor")
    victim = before[0]["spec"]["nodeName"]
    on_victim = {p["metadata"]["uid"] for p in before if p["spec"]["nodeName"] == victim}
    # a pod that tolerates the outage longer than this test: it must be marked not ready, not evicted
    patient = [dict(t, tolerationSeconds=600) for t in FAST_TOLERATIONS]
    await env.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "patient", "namespace": "default"},
                          "spec": {"nodeName": victim, "tolerations": patient, "containers": [{"name": "c", "image": "img"}]}})
    await env.wait_for("patient running", lambda: _ready(env, "patient", True))
    stopped = time.monotonic()
    sim.stop_node(victim)

    async def node_unknown():
        node = await env.api.get("nodes", victim)
        ready = P.condition(node, "Ready")
        taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
        return node if ready["status"] == "Unknown" and (UNREACHABLE, "NoExecute") in taints else None
    node = await env.wait_for("victim NotReady and tainted", node_unknown, timeout=30)
    assert P.condition(node, "Ready")["reason"] == "NodeStatusUnknown"

    async def moved():
        pods = await env.pods(selector="app=survivor")
        active = [p for p in pods if P.is_active(p)]
        gone = all(p["metadata"]["uid"] not in on_victim or P.is_terminating(p) for p in pods)
        return gone and len(active) == 3 and all(p["spec"].get("nodeName") not in (None, victim) and P.is_ready(p) for p in active)
    await env.wait_for("pods recreated on live nodes", moved, timeout=30)
    # grace counts from the node's last lease renewal, which came up to one renew interval (0.2 s) before the stop
    assert time.monotonic() - stopped >= grace + 1.0 - 0.2, "not before grace + toleration"
    lifecycle = env.managers[-1].get(NodeLifecycleController)
    assert lifecycle.evictions == len(on_victim)
    await env.wait_for("pods on the silent node marked not ready", lambda: _ready(env, "patient", False))
    assert not P.is_terminating(await env.api.get("pods", "patient", namespace="default"))

    # the node comes back: its taints go
    sim.start_node(victim)

    async def untainted():
        node = await env.api.get("nodes", victim)
        return not any(t["key"] == UNREACHABLE for t in node["spec"].get("taints") or [])
    await env.wait_for("taints removed after the node is back", untainted, timeout=30)


async def _ready(env, name: str, want: bool) -> bool:
    return P.is_ready(await env.api.get("pods", name, namespace="default")) == want


async def test_control_plane_restart_after_long_downtime_evicts_nothing(tmp_path):
    cp = await asyncio.to_thread(start_control_plane, tmp_path / "cp", timings={"pod_deletion_margin": 0.5, "bookmark_interval": 0.5})
    api = ApiClient.from_kubeconfig(str(cp.kubeconfig), retries=2, max_backoff=0.5)
    env = Env(api, cp.kubeconfig)
    try:
        # grace 4 s: after the restart a node's first renewal can trail by ~2 s (its failed renewals were
        # rescheduled 1 s apart, plus client retries) and more on a loaded machine; that lag is not death
        grace, toleration = 4.0, 1
        await env.start(controllers=("nodelifecycle",), node_monitor_period=0.1, node_monitor_grace_period=grace)
        await env.add_nodes("cpr-", 3, renew_interval=0.2)
        for i in range(3):
            await api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"keep-{i}", "namespace": "default"},
                              "spec": {"containers": [{"name": "c", "image": "img"}], "tolerations": FAST_TOLERATIONS}})

        async def running():
            pods = await env.pods()
            return pods if len(pods) == 3 and all(P.is_ready(p) for p in pods) else None
        pods = await env.wait_for("pods running", running)
        uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
        lifecycle = env.managers[-1].get(NodeLifecycleController)

        await asyncio.to_thread(cp.stop)
        await asyncio.sleep(grace + toleration + 2)  # far longer than grace + toleration: every lease is stale
        await asyncio.to_thread(cp.start)
        await asyncio.sleep(grace + toleration + 3)  # time enough to evict, had the guard not held

        pods = await env.pods()
        assert {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods} == uids
        assert not any(P.is_terminating(p) for p in pods)
        for node in (await api.list("nodes"))["items"]:
            assert not any(t.get("effect") == "NoExecute" for t in node["spec"].get("taints") or []), node["spec"]
        assert lifecycle.evictions == 0 and lifecycle.resets >= 1
    finally:
        await env.stop()
        await api.close()
        await asyncio.to_thread(cp.stop)
