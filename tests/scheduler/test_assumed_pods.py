"""A pod the scheduler has assumed (bound in its cache, binding in flight) is never scheduled again.

The race, as a loaded CI machine produced it: a high-priority pod preempts a low-priority one and
is nominated; once the victim is gone it is scheduled and assumed on that node; then its own
earlier ``PodScheduled=False`` status write lands, and the pod informer — which has not seen the
binding yet — reports a pending pod. Queuing it again ran a second cycle in which the pod counted
against its own node, so it "needed" room elsewhere and preempted a second, innocent pod.

Here the informers are fed by hand (``apply_event``) so the events come in exactly that order; the
control plane, the evictions and the binding are real.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from clusterctl.client.errors import NotFound
from clusterctl.scheduler.scheduler import Scheduler, SchedulerConfig
from tests.client.live import control_plane
from tests.scheduler.objects import node as node_obj
from tests.scheduler.objects import pod as pod_obj


async def _pop(sched: Scheduler, timeout: float = 30.0):
    return (await asyncio.wait_for(sched.queue.pop(), timeout)).info


async def _settle(sched: Scheduler) -> None:
    while sched._tasks:
        await asyncio.gather(*list(sched._tasks), return_exceptions=True)


async def test_an_assumed_pod_is_not_scheduled_again_when_a_stale_update_arrives(tmp_path: Path) -> None:
    async with control_plane(tmp_path) as (api, _):
        sched = Scheduler(api, SchedulerConfig(initial_backoff=0.01, max_backoff=0.05))
        try:
            for name in ("a", "b"):
                sched.nodes.apply_event("ADDED", node_obj(name, cpu="2"))
            for name, value in (("low", 10), ("mid", 500), ("high", 1000)):
                await api.create({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                  "metadata": {"name": name}, "value": value})
            stored = {}
            for name, node, prio in (("low-pod", "a", "low"), ("mid-pod", "b", "mid"), ("urgent", None, "high")):
                manifest = pod_obj(name, cpu="1500m", node_name=node)
                manifest["spec"]["priorityClassName"] = prio
                stored[name] = await api.create(manifest)   # spec.priority admitted from the class
                sched.pods.apply_event("ADDED", stored[name])
            urgent = stored["urgent"]

            # 1st cycle: nothing fits; the low-priority pod on node a is the victim
            sched.schedule_one(await _pop(sched))
            assert sched.stats.preemptions == 1 and sched._nominated_of.get("default/urgent") == "a"
            await _settle(sched)
            sched.pods.apply_event("DELETED", stored["low-pod"])

            # 2nd cycle: room on a; assumed there, binding sent
            sched.schedule_one(await _pop(sched))
            assert sched.cache.node_of("default/urgent") == "a"
            assert "default/urgent" in sched.cache.assumed or sched.stats.bound == 1

            # the stale update: the pod still pending, as the informer last saw it
            late = dict(urgent, status={"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/2 nodes are available"}]})
            sched.pods.apply_event("MODIFIED", late)
            assert sched.queue.pending == {"active": 0, "backoff": 0, "unschedulable": 0}, "an assumed pod was queued again"
            # and a cycle for it (e.g. already queued before the update) does nothing
            sched.schedule_one(sched.pod_info(late))
            await _settle(sched)

            assert sched.stats.preemptions == 1
            mid = await api.get("pods", "mid-pod", namespace="default")
            assert not mid["metadata"].get("deletionTimestamp"), "an innocent pod was preempted"
            assert (await api.get("pods", "urgent", namespace="default"))["spec"]["nodeName"] == "a"
            try:
                await api.get("pods", "low-pod", namespace="default")
            except NotFound:
                pass
            else:
                low = await api.get("pods", "low-pod", namespace="default")
                assert low["metadata"].get("deletionTimestamp"), "the victim was not evicted"
        finally:
            sched.queue.close()
            await _settle(sched)
            await sched.events.close()
