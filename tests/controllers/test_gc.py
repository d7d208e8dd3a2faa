"""Garbage collection by ownerReferences: a deleted Deployment takes its ReplicaSets and pods along."""

from __future__ import annotations

from tests.controllers.test_deployment import deployment, rolled_out


async def test_deleting_a_deployment_removes_replicasets_and_pods(env):
    await env.start(controllers=("replicaset", "deployment", "garbagecollector"), gc_interval=0.5)
    await env.add_nodes("gc-", 2)
    await env.api.create(deployment("gcweb", "img:v1", replicas=3))
    await rolled_out(env, "gcweb", "img:v1")
    await env.api.delete("deployments", "gcweb", namespace="default")

    async def gone():
        sets = (await env.api.list("replicasets", namespace="default", label_selector="app=gcweb"))["items"]
        return not sets and not await env.pods(selector="app=gcweb")
    await env.wait_for("replicasets and pods collected", gone)


async def test_sweep_collects_dependents_whose_owner_never_existed(env):
    """The API server collects on owner deletion; the controller's sweep catches what that missed."""
    await env.start(controllers=("garbagecollector",), gc_interval=0.2)
    owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost", "uid": "00000000-dead-beef-0000-000000000000", "controller": True}
    for name, refs in (("orphaned", [owner]), ("unowned", [])):
        await env.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "ownerReferences": refs},
                              "spec": {"containers": [{"name": "c", "image": "img"}]}})
    # a live owner keeps its dependent even though another of its owners is gone
    live = await env.api.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "keeper", "namespace": "default"},
                                 "spec": {"ports": [{"port": 80}]}})
    keeper_ref = {"apiVersion": "v1", "kind": "Service", "name": "keeper", "uid": live["metadata"]["uid"]}
    await env.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "kept", "namespace": "default",
                                                                          "ownerReferences": [dict(owner, controller=False), keeper_ref]},
                          "spec": {"containers": [{"name": "c", "image": "img"}]}})

    async def collected():
        names = {p["metadata"]["name"] for p in await env.pods()}
        return "orphaned" not in names and names >= {"unowned", "kept"}
    await env.wait_for("orphaned pod collected", collected)
