"""HPA: Kubernetes' formula with tolerance, min/max, and scale-down stabilisation."""

from __future__ import annotations

import asyncio

from clusterctl.controllers import pods as P
from clusterctl.controllers.hpa import CPU_USAGE_ANNOTATION, recommend
from tests.controllers.test_cronjob import FakeClock
from tests.controllers.test_deployment import deployment, rolled_out


def test_formula_and_tolerance():
    assert recommend(3, 160, 80, 0.1) == 6
    assert recommend(3, 85, 80, 0.1) == 3, "within 10%: no change"
    assert recommend(4, 40, 80, 0.1) == 2
    assert recommend(3, 81, 50, 0.1) == 5  # ceil(4.86)


async def set_usage(env, millis: int) -> None:
    """Annotate every active pod's usage and wait until the controllers' pod cache holds it all: a
    clock step right after must not meet a recommendation computed from the older samples (one
    made at the stepped time would sit in the stabilisation window for as long as the clock stays)."""
    names = []
    for pod in await env.pods(selector="app=busy"):
        if P.is_active(pod):
            names.append(pod["metadata"]["name"])
            await env.patch("pods", pod["metadata"]["name"], {"metadata": {"annotations": {CPU_USAGE_ANNOTATION: str(millis)}}},
                                namespace="default")
    for name in names:
        await env.seen_by_controllers(f"usage {millis} of {name}", "pods", f"default/{name}",
                                      lambda p: (p["metadata"].get("annotations") or {}).get(CPU_USAGE_ANNOTATION) == str(millis))


async def replicas(env, n: int):
    d = await env.api.get("deployments", "busy", namespace="default")
    return d if d["spec"]["replicas"] == n else None


async def test_hpa_scales_up_at_once_and_down_after_stabilisation(env):
    clock = FakeClock(1_000_000.0)
    await env.start(controllers=("replicaset", "deployment", "horizontalpodautoscaling"), hpa_sync_period=0.1,
                    hpa_downscale_stabilization=60, clock=clock)
    await env.add_nodes("hpa-", 3)
    d = deployment("busy", "img:v1", replicas=2)
    d["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "100m"}}
    await env.api.create(d)
    await rolled_out(env, "busy", "img:v1")
    await env.api.create({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "busy", "namespace": "default"},
                          "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "busy"},
                                   "minReplicas": 1, "maxReplicas": 5,
                                   "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]}})
    await set_usage(env, 100)  # 100% of request against a 50% target → 2 * 2 = 4
    await env.wait_for("scaled up to 4", lambda: replicas(env, 4))
    await rolled_out(env, "busy", "img:v1")
    await asyncio.sleep(0.5)
    assert await replicas(env, 4), "new pods without samples count as idle: no runaway scale-up"
    await set_usage(env, 200)  # 400% → 4 * 8 = 32, capped at 5
    await env.wait_for("capped at maxReplicas", lambda: replicas(env, 5))

    async def hpa_status():
        s = (await env.api.get("horizontalpodautoscalers", "busy", namespace="default")).get("status") or {}
        return s if s.get("desiredReplicas") == 5 and s.get("lastScaleTime") else None
    s = await env.wait_for("HPA status", hpa_status)
    assert s["currentMetrics"][0]["resource"]["current"]["averageUtilization"] >= 100
    await rolled_out(env, "busy", "img:v1")

    await set_usage(env, 10)  # 20% → wants 2, but the window still holds the recommendation of 5
    clock.now += 30
    await asyncio.sleep(0.6)
    assert await replicas(env, 5), "no scale-down inside the stabilisation window"
    clock.now += 61
    await env.wait_for("scaled down after the window", lambda: _at_most(env, 2))


async def _at_most(env, n: int):
    d = await env.api.get("deployments", "busy", namespace="default")
    return d["spec"]["replicas"] <= n
