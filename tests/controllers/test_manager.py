"""The controller manager: one leader at a time, takeover on loss, and the control-plane component wiring."""

from __future__ import annotations

import asyncio

import pytest

from clusterctl.controllers.manager import ControllerManagerConfig, run_controllers
from clusterctl.sim.hollow import HollowCluster, HollowConfig
from tests.client.live import control_plane
from tests.controllers.conftest import Env, cancel_all
from tests.controllers.test_deployment import deployment, rolled_out


def replicaset(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"rs": name}},
                     "template": {"metadata": {"labels": {"rs": name}}, "spec": {"containers": [{"name": "c", "image": "img"}]}}}}


def test_config_from_dict_reads_camel_case_and_rejects_unknown():
    cfg = ControllerManagerConfig.from_dict({"nodeMonitorGracePeriod": 5, "controllers": ["replicaset"]})
    assert cfg.node_monitor_grace_period == 5 and cfg.controllers == ("replicaset",)
    with pytest.raises(ValueError, match="nodeMonitorGracePeriodd"):
        ControllerManagerConfig.from_dict({"nodeMonitorGracePeriodd": 5})


async def test_only_the_leader_runs_controllers_and_a_successor_takes_over(env):
    terms: dict[str, list] = {"a": [], "b": []}

    def start(identity: str) -> asyncio.Task:
        # a 6 s renew deadline: on a loaded machine a renewal can take over a second, which must not cost a its lease
        # (then "b never leads" fails); the takeover below is quick anyway, a releases the Lease when cancelled
        cfg = ControllerManagerConfig(controllers=("replicaset",), identity=identity, lease_duration=10.0, renew_deadline=6.0, retry_period=0.1)
        return asyncio.create_task(run_controllers(env.api, config=cfg, on_term=terms[identity].append))

    a = start("a")
    await env.wait_for("a leads", lambda: _true(bool(terms["a"])))
    b = start("b")
    await env.api.create(replicaset("one", 2))
    await env.wait_for("pods of one", lambda: _pods(env, "rs=one", 2))
    await asyncio.sleep(0.5)
    assert terms["b"] == [], "b never leads while a renews"
    lease = await env.api.get("leases", "clusterctl-controller-manager", namespace="kube-system")
    assert lease["spec"]["holderIdentity"] == "a"

    await cancel_all([a])
    await env.wait_for("b takes over", lambda: _true(bool(terms["b"])), timeout=30)
    await env.api.create(replicaset("two", 3))
    await env.wait_for("pods of two by the new leader", lambda: _pods(env, "rs=two", 3))
    await cancel_all([b])


async def test_control_plane_component_runs_the_controllers(tmp_path):
    components = ["clusterctl.scheduler.scheduler:scheduler_component", "clusterctl.controllers.manager:controller_manager_component"]
    async with control_plane(tmp_path, components=components) as (api, _):
        sim = HollowCluster(api, HollowConfig(count=2, prefix="cpc-"))
        task = asyncio.create_task(sim.run())
        try:
            await asyncio.wait_for(sim.started(), 60)
            await api.create(deployment("wired", "img:v1", replicas=2))

            e = Env(api, tmp_path)
            await rolled_out(e, "wired", "img:v1")
            nodes = (await api.list("nodes"))["items"]
            await e.wait_for("pod CIDRs from node IPAM", lambda: _all_cidrs(api))
            assert len(nodes) == 2
        finally:
            await cancel_all([task])


async def _all_cidrs(api):
    return all((n.get("spec") or {}).get("podCIDR") for n in (await api.list("nodes"))["items"])


async def _pods(env, selector: str, n: int):
    pods = await env.pods(selector=selector)
    return len(pods) == n


async def _true(v: bool) -> bool:
    return v
