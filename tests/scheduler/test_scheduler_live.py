"""The scheduler against a real API server with hollow nodes."""

from __future__ import annotations

import asyncio
import time

from clusterctl.client.errors import NotFound
from clusterctl.scheduler.scheduler import Scheduler, SchedulerConfig
from tests.scheduler.conftest import Env
from tests.scheduler.objects import pod

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def bound(p: dict) -> bool:
    return bool(p["spec"].get("nodeName"))


def scheduled_condition(p: dict) -> dict | None:
    return next((c for c in p.get("status", {}).get("conditions") or [] if c["type"] == "PodScheduled"), None)


def api_pod(name: str, **kw) -> dict:
    p = pod(name, **kw)
    del p["metadata"]["uid"]
    del p["status"]
    return p


async def test_pods_bind_to_fitting_nodes_with_an_event(env: Env) -> None:
    await env.add_nodes("n-", 2, cpu="2")
    await env.start()
    await env.api.create(api_pod("a", cpu="1500m"))
    await env.api.create(api_pod("b", cpu="1500m"))
    a = await env.wait_pod("a", bound)
    b = await env.wait_pod("b", bound)
    assert {a["spec"]["nodeName"], b["spec"]["nodeName"]} == {"n-0", "n-1"}, "each node fits only one of them"
    await env.wait_pod("a", lambda p: p["status"].get("phase") == "Running")
    await env.wait_event("a", lambda e: e["reason"] == "Scheduled" and e["message"] == f"Successfully assigned default/a to {a['spec']['nodeName']}")


async def test_taints_tolerations_and_node_selector(env: Env) -> None:
    await env.add_nodes("plain-", 1)
    await env.add_nodes("gpu-", 2, taints=[GPU_TAINT], labels={"accelerator": "gpu"})
    await env.start()
    for i in range(3):
        await env.api.create(api_pod(f"web{i}"))
    await env.api.create(api_pod("train", node_selector={"accelerator": "gpu"},
                                 tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]))
    for i in range(3):
        assert (await env.wait_pod(f"web{i}", bound))["spec"]["nodeName"] == "plain-0"
    assert (await env.wait_pod("train", bound))["spec"]["nodeName"].startswith("gpu-")


async def test_insufficient_cpu_is_explained_then_binds_when_a_node_is_added(env: Env) -> None:
    await env.add_nodes("small-", 2, cpu="1")
    await env.add_nodes("gpu-", 1, cpu="8", taints=[GPU_TAINT])
    await env.start()
    await env.api.create(api_pod("big", cpu="2"))
    p = await env.wait_pod("big", lambda p: (scheduled_condition(p) or {}).get("status") == "False")
    cond = scheduled_condition(p)
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. "
                               "preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, "
                               "2 No preemption victims found for incoming pod.")
    await env.wait_event("big", lambda e: e["reason"] == "FailedScheduling" and e["type"] == "Warning" and e["message"] == cond["message"])
    await env.add_nodes("large-", 1, cpu="4")
    assert (await env.wait_pod("big", bound))["spec"]["nodeName"] == "large-0"


async def test_preemption_evicts_only_lower_priority_pods(env: Env) -> None:
    for name, value in (("low", 10), ("mid", 500), ("high", 1000)):
        await env.api.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value})
    await env.add_nodes("n-", 2, cpu="2")
    await env.start()
    low = api_pod("low-pod", cpu="1500m")
    low["spec"]["priorityClassName"] = "low"
    mid = api_pod("mid-pod", cpu="1500m")
    mid["spec"]["priorityClassName"] = "mid"
    await env.api.create(low)
    await env.api.create(mid)
    low_node = (await env.wait_pod("low-pod", bound))["spec"]["nodeName"]
    await env.wait_pod("mid-pod", bound)

    peer = api_pod("peer", cpu="1500m")  # same priority as low-pod: may not preempt it
    peer["spec"]["priorityClassName"] = "low"
    await env.api.create(peer)
    p = await env.wait_pod("peer", lambda p: (scheduled_condition(p) or {}).get("status") == "False")
    assert "2 No preemption victims found for incoming pod" in scheduled_condition(p)["message"]
    await env.api.delete("pods", "peer", namespace="default")

    urgent = api_pod("urgent", cpu="1500m")
    urgent["spec"]["priorityClassName"] = "high"
    await env.api.create(urgent)
    p = await env.wait_pod("urgent", bound)
    assert p["spec"]["nodeName"] == low_node
    try:
        await env.api.get("pods", "low-pod", namespace="default")
        raise AssertionError("the low-priority pod should have been evicted")
    except NotFound:
        pass
    mid_now = await env.api.get("pods", "mid-pod", namespace="default")
    assert not mid_now["metadata"].get("deletionTimestamp"), "a higher-priority pod is never a victim"
    assert env.scheduler.stats.preemptions == 1
    await env.wait_event("low-pod", lambda e: e["reason"] == "Preempted")


async def test_scheduler_runs_as_a_control_plane_component(tmp_path) -> None:
    from clusterctl.sim.hollow import HollowCluster, HollowConfig
    from tests.client.live import control_plane

    async with control_plane(tmp_path, components=["clusterctl.scheduler.scheduler:scheduler_component"]) as (api, _):
        sim = HollowCluster(api, HollowConfig(count=1, renew_interval=5))
        task = asyncio.create_task(sim.run())
        try:
            await asyncio.wait_for(sim.started(), 60)
            await api.create(api_pod("cp"))
            env = Env(api)
            assert (await env.wait_pod("cp", bound))["spec"]["nodeName"] == "hollow-0"
            lease = await api.get("leases", "kube-scheduler", namespace="kube-system")
            assert lease["spec"]["holderIdentity"]
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_an_unschedulable_pod_is_not_retried_for_its_own_status_update(env: Env) -> None:
    await env.add_nodes("small-", 1, cpu="1")
    env.scheduler.queue.initial_backoff = env.scheduler.queue.max_backoff = 0.05
    env.scheduler.queue.unschedulable_timeout = 60
    await env.start()
    await env.api.create(api_pod("big", cpu="2"))
    await env.wait_pod("big", lambda p: (scheduled_condition(p) or {}).get("status") == "False")
    # the PodScheduled write has come back through the scheduler's own informer (waited for, not guessed) ...
    end = time.monotonic() + 30
    while (scheduled_condition(env.scheduler.pods.get("default/big") or {}) or {}).get("status") != "False":
        assert time.monotonic() < end, "the scheduler's informer never saw its PodScheduled write"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # ... and 20 backoff periods passed after it
    attempts = env.scheduler.stats.attempts
    assert attempts == 1, "nothing in the cluster changed: one attempt only"
    await env.api.patch("pods", "big", {"metadata": {"labels": {"x": "y"}}}, namespace="default")  # the pod itself changed
    end = asyncio.get_running_loop().time() + 30
    while env.scheduler.stats.attempts == attempts:
        assert asyncio.get_running_loop().time() < end, "a changed pod is retried"
        await asyncio.sleep(0.05)


async def test_explain_pod_over_the_api_names_the_reason(env: Env) -> None:
    from clusterctl.scheduler.explain import explain_pod

    await env.add_nodes("small-", 2, cpu="1")
    await env.add_nodes("gpu-", 1, cpu="8", taints=[GPU_TAINT])
    await env.api.create(api_pod("big", cpu="2"))  # no scheduler running: it stays pending
    text = await explain_pod(env.api, "big")
    rows = {line.split()[0]: line for line in text.splitlines()[2:-1]}
    assert "Insufficient cpu" in rows["small-0"] and "Insufficient cpu" in rows["small-1"]
    assert "node(s) had untolerated taint {dedicated: gpu}" in rows["gpu-0"]
    assert text.splitlines()[-1] == "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."


async def test_scheduler_runs_as_a_supervised_child_of_the_control_plane(tmp_path) -> None:
    import psutil

    from clusterctl.sim.hollow import HollowCluster, HollowConfig
    from tests.client.live import control_plane

    async with control_plane(tmp_path, components=["clusterctl.scheduler.scheduler:scheduler_process_component"]) as (api, _):
        sim = HollowCluster(api, HollowConfig(count=1, renew_interval=5))
        task = asyncio.create_task(sim.run())
        try:
            await asyncio.wait_for(sim.started(), 60)
            await api.create(api_pod("child"))
            env = Env(api)
            assert (await env.wait_pod("child", bound, timeout=60))["spec"]["nodeName"] == "hollow-0"
            def cmdline(p: psutil.Process) -> str:
                try:
                    return " ".join(p.cmdline())
                except psutil.Error:  # another of this process's children ended meanwhile
                    return ""
            children = [p for p in psutil.Process().children(recursive=True) if "clusterctl.scheduler.cli" in cmdline(p)]
            assert len(children) == 1
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    children[0].wait(30)  # stopping the control plane stops its scheduler


async def test_scheduled_events_never_hold_up_binding_and_trail_a_burst(env: Env) -> None:
    """Events go through a bounded queue off the hot path: with nobody draining it (0 writers) a
    burst still binds every pod and the overflow is counted as dropped; with the default queue
    and writers, every pod of a burst gets its Scheduled event."""
    env.scheduler = Scheduler(env.api, SchedulerConfig(initial_backoff=0.05, max_backoff=0.2, event_queue_size=10, event_writers=0))
    await env.add_nodes("n-", 3)
    await env.start()
    await asyncio.gather(*(env.api.create(api_pod(f"stuck-{i}")) for i in range(40)))
    for i in range(40):
        await env.wait_pod(f"stuck-{i}", bound)
    assert env.scheduler.stats.bound == 40
    assert (env.scheduler.events.queued, env.scheduler.events.dropped) == (10, 30)
    await env.stop()

    env.tasks = []
    env.scheduler = Scheduler(env.api, SchedulerConfig(initial_backoff=0.05, max_backoff=0.2))
    await env.start()
    names = {f"burst-{i}" for i in range(60)}
    await asyncio.gather(*(env.api.create(api_pod(name)) for name in names))
    end = time.monotonic() + 60
    while True:
        events = (await env.api.list("events", namespace="default", field_selector="reason=Scheduled"))["items"]
        seen = {e["involvedObject"]["name"] for e in events} & names
        if seen == names:
            break
        assert time.monotonic() < end, f"{len(names - seen)} pods without a Scheduled event"
        await asyncio.sleep(0.1)
    assert env.scheduler.events.dropped == 0
