"""StatefulSets: ordered creation, stable names, reverse-order scale-down."""

from __future__ import annotations

import asyncio

from clusterctl.controllers import pods as P


async def test_statefulset_creates_in_order_and_scales_down_in_reverse(env):
    await env.start(controllers=("statefulset",))
    await env.add_nodes("sts-", 2, ready_delay=0.2)
    listing = await env.api.list("pods", namespace="default")
    created: list[str] = []
    deleted: list[str] = []
    ready_at_creation: list[set[str]] = []
    ready: set[str] = set()

    async def follow():
        async for etype, pod in env.api.watch("pods", namespace="default", label_selector="app=db",
                                              resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=60):
            name = pod["metadata"]["name"]
            if etype == "ADDED":
                created.append(name)
                ready_at_creation.append(set(ready))
            elif etype == "DELETED":
                deleted.append(name)
                ready.discard(name)
            elif P.is_ready(pod) and P.is_active(pod):
                ready.add(name)

    task = asyncio.create_task(follow())
    try:
        await env.api.create({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
                              "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "db"}},
                                       "template": {"metadata": {"labels": {"app": "db"}},
                                                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "db:1"}]}}}})

        async def status(n: int):
            s = (await env.api.get("statefulsets", "web", namespace="default")).get("status") or {}
            return s if s.get("readyReplicas") == n and s.get("replicas") == n else None
        await env.wait_for("three ready", lambda: status(3))
        assert created == ["web-0", "web-1", "web-2"]
        assert ready_at_creation == [set(), {"web-0"}, {"web-0", "web-1"}], "each pod waited for the previous one to be Ready"
        pod = await env.api.get("pods", "web-1", namespace="default")
        assert pod["spec"]["hostname"] == "web-1" and pod["spec"]["subdomain"] == "web"
        assert pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] == "web-1"

        await env.patch("statefulsets", "web", {"spec": {"replicas": 1}}, namespace="default")
        await env.wait_for("scaled to one", lambda: status(1))
        await env.wait_for("deletions seen", lambda: _true(len(deleted) >= 2))
        assert deleted[:2] == ["web-2", "web-1"], "scale-down goes from the highest ordinal"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _true(value: bool) -> bool:
    return value
