"""Hollow nodes against the real API server: register, heartbeat, run and finish pods, go silent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from clusterctl.client.errors import NotFound
from clusterctl.client.rest import ApiClient
from clusterctl.sim.hollow import ANNOTATION_COMPLETE_AFTER, ANNOTATION_EXIT_CODE, HollowCluster, HollowConfig


async def wait_for(check, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < end, "condition not reached"
        await asyncio.sleep(0.05)


@pytest.fixture
async def hollow(api: ApiClient) -> AsyncIterator[HollowCluster]:
    sim = HollowCluster(api, HollowConfig(count=3, cpu="2", memory="4Gi", ready_delay=0.3, renew_interval=0.3))
    task = asyncio.create_task(sim.run())
    await asyncio.wait_for(sim.started(), 60)
    yield sim
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def pod(name: str, node: str, **annotations: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}], "nodeName": node}}


async def test_nodes_register_ready_and_renew_leases(api: ApiClient, hollow: HollowCluster) -> None:
    nodes = (await api.list("nodes"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == ["hollow-0", "hollow-1", "hollow-2"]
    for node in nodes:
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert node["status"]["allocatable"]["cpu"] == "2" and node["status"]["allocatable"]["memory"] == "4Gi"
    first = await api.get("leases", "hollow-1", namespace="kube-node-lease")
    assert first["spec"]["holderIdentity"] == "hollow-1"

    async def renewed() -> bool:
        lease = await api.get("leases", "hollow-1", namespace="kube-node-lease")
        return lease["spec"]["renewTime"] != first["spec"]["renewTime"]

    await wait_for(renewed)


async def test_bound_pod_reported_running_after_delay_and_deleted_pod_finished(api: ApiClient, hollow: HollowCluster) -> None:
    created = time.monotonic()
    await api.create(pod("web", "hollow-0"))

    async def running() -> dict | None:
        p = await api.get("pods", "web", namespace="default")
        return p if p.get("status", {}).get("phase") == "Running" else None

    p = await wait_for(running)
    assert time.monotonic() - created >= 0.3, "ready_delay is honoured"
    conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
    assert [cs["name"] for cs in p["status"]["containerStatuses"]] == ["app", "side"]
    assert all(cs["ready"] and "running" in cs["state"] for cs in p["status"]["containerStatuses"])
    assert p["status"]["podIP"].startswith("10.244.0.")

    await api.delete("pods", "web", namespace="default", grace_period_seconds=30)

    async def gone() -> bool:
        try:
            await api.get("pods", "web", namespace="default")
        except NotFound:
            return True
        return False

    await wait_for(gone, 25)  # before the 30 s grace period: the node finished it


async def test_pods_can_be_told_to_complete_or_fail(api: ApiClient, hollow: HollowCluster) -> None:
    await api.create(pod("ok", "hollow-1", **{ANNOTATION_COMPLETE_AFTER: "0.2"}))
    await api.create(pod("bad", "hollow-2", **{ANNOTATION_COMPLETE_AFTER: "0.2", ANNOTATION_EXIT_CODE: "3"}))

    async def phases() -> tuple[str, str] | None:
        a = (await api.get("pods", "ok", namespace="default")).get("status", {}).get("phase")
        b = await api.get("pods", "bad", namespace="default")
        if a == "Succeeded" and b.get("status", {}).get("phase") == "Failed":
            return a, b
        return None

    _, bad = await wait_for(phases)
    assert bad["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


async def renew_times(api: ApiClient, *names: str) -> list[str]:
    return [(await api.get("leases", n, namespace="kube-node-lease"))["spec"]["renewTime"] for n in names]


async def renewed_twice(api: ApiClient, *names: str) -> None:
    """Wait (however loaded the machine) until each named node's lease has been renewed twice:
    proof that the simulator's clock went on for at least a renew interval, not a guessed sleep."""
    for _ in range(2):
        before = await renew_times(api, *names)

        async def moved() -> bool:
            return all(a != b for a, b in zip(before, await renew_times(api, *names)))

        await wait_for(moved)


async def test_a_stopped_node_stops_heartbeating_and_ignores_its_pods(api: ApiClient, hollow: HollowCluster) -> None:
    hollow.stop_node("hollow-2")
    await renewed_twice(api, "hollow-0", "hollow-1")  # a renewal of hollow-2 in flight at the stop has landed by now
    before = (await api.get("leases", "hollow-2", namespace="kube-node-lease"))["spec"]["renewTime"]
    await api.create(pod("orphan", "hollow-2"))
    await api.create(pod("control", "hollow-1"))  # the same pod on a live node does run

    async def control_running() -> bool:
        return (await api.get("pods", "control", namespace="default")).get("status", {}).get("phase") == "Running"

    await wait_for(control_running)
    await renewed_twice(api, "hollow-0", "hollow-1")  # > 2 renew intervals while hollow-2 is silent
    assert (await api.get("leases", "hollow-2", namespace="kube-node-lease"))["spec"]["renewTime"] == before
    assert (await api.get("pods", "orphan", namespace="default")).get("status", {}).get("phase") != "Running"
    hollow.start_node("hollow-2")

    async def running() -> bool:
        return (await api.get("pods", "orphan", namespace="default")).get("status", {}).get("phase") == "Running"

    await wait_for(running)


async def test_pod_status_writes_are_paced_one_per_pod_and_coalesced(api: ApiClient) -> None:
    """A burst of bindings becomes exactly one status write per pod through a few writers, and a
    pod whose write is already waiting is not queued twice."""
    sim = HollowCluster(api, HollowConfig(count=2, status_writers=2, renew_interval=0.3))
    task = asyncio.create_task(sim.run())
    try:
        await asyncio.wait_for(sim.started(), 60)
        # Held back from the writers, a due pod queued twice is one entry (and one write later).
        sim._status_due["default/held"] = "run"
        sim._queue_status("run", "default/held")
        assert sim.stats["pod_status_coalesced"] == 1 and list(sim._status_queue).count("default/held") == 0
        sim._status_due.pop("default/held")

        names = [f"burst-{i}" for i in range(30)]
        await asyncio.gather(*(api.create(pod(name, f"hollow-{i % 2}")) for i, name in enumerate(names)))

        async def all_running() -> bool:
            items = (await api.list("pods", namespace="default"))["items"]
            return sum(1 for p in items if p["metadata"]["name"] in names and p.get("status", {}).get("phase") == "Running") == len(names)

        await wait_for(all_running)
        assert sim.stats["pod_status_writes"] == len(names)
        renewals = sim.stats["lease_renewals"]

        async def heartbeats_go_on() -> bool:  # beside the status writers; 2 nodes x 3 rounds of renewals
            return sim.stats["lease_renewals"] >= renewals + 6

        await wait_for(heartbeats_go_on)
        assert sim.stats["pod_status_writes"] == len(names), "nothing changed: no further writes"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_fake_pod_cidrs_are_distinct_private_24s_beyond_3072_nodes() -> None:
    """Without IPAM every hollow node gets its own /24 in 10/8 (a 5,000-node bench once failed
    every pod on nodes #3,072 and up: '10.256.0.0/24')."""
    import ipaddress

    from clusterctl.sim.hollow import PodAddresses, fake_pod_cidr

    nets = [fake_pod_cidr(i) for i in range(6000)]
    assert len(set(nets)) == 6000
    assert all(n.prefixlen == 24 and n.subnet_of(ipaddress.ip_network("10.0.0.0/8")) for n in nets)
    assert not any(n.overlaps(ipaddress.ip_network("10.240.0.0/16")) for n in nets)  # the nodes' InternalIPs
    assert PodAddresses().ip_for("default/p", "hollow-5000", 5000, None) == "10.135.136.2"
