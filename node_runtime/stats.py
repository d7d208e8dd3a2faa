"""CPU and memory usage of this node and of each pod/container, from cgroups and psutil.

Served by the agent's endpoint as ``/stats/summary`` (a subset of kubelet's Summary API: node
and per-pod ``cpu.usageNanoCores``/``usageCoreNanoSeconds``, ``memory.workingSetBytes``) for
``clusterctl top``, the HPA and the dashboard, and summarised into the Node annotation
``clusterctl.io/usage`` (``{"cpu": "<millicores>m", "memory": "<bytes>", "pods": n, "time": ...}``).
CPU rates are computed between two samples kept in memory (the first sample reports 0).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import psutil

from node_runtime.status import rfc3339

if TYPE_CHECKING:
    from node_runtime.agent import Agent


class UsageSampler:
    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}

    def rate(self, key: str, total_ns: int) -> int:
        """nanocores since the previous sample of ``key``."""
        now = self._clock()
        prev = self._last.get(key)
        self._last[key] = (now, total_ns)
        if prev is None or now <= prev[0] or total_ns < prev[1]:
            return 0
        return int((total_ns - prev[1]) / (now - prev[0]))


def node_usage(sampler: UsageSampler) -> dict[str, Any]:
    cpu = psutil.cpu_times()
    total_ns = int((cpu.user + cpu.system + getattr(cpu, "nice", 0) + getattr(cpu, "irq", 0) + getattr(cpu, "softirq", 0)) * 1e9)
    vm = psutil.virtual_memory()
    return {"cpu": {"time": rfc3339(), "usageNanoCores": sampler.rate("__node__", total_ns), "usageCoreNanoSeconds": total_ns},
            "memory": {"time": rfc3339(), "workingSetBytes": vm.total - vm.available, "availableBytes": vm.available,
                       "usageBytes": vm.total - vm.free}}


def summary(agent: Agent) -> dict[str, Any]:
    """kubelet-shaped ``/stats/summary``."""
    sampler = agent.sampler
    pods = []
    for worker in list(agent.workers.values()):
        containers = []
        pod_cpu = pod_mem = pod_ns = 0
        for rec in worker.init + worker.containers:
            if not rec.runtime_id or not rec.running:
                continue
            cg = agent.runtime.cgroup(rec.runtime_id)
            if cg is None:
                continue
            ns = cg.cpu_usage_ns()
            mem = cg.memory_bytes()
            rate = sampler.rate(rec.runtime_id, ns)
            containers.append({"name": rec.name, "startTime": (rec.state.get("running") or {}).get("startedAt"),
                               "cpu": {"time": rfc3339(), "usageNanoCores": rate, "usageCoreNanoSeconds": ns},
                               "memory": {"time": rfc3339(), "workingSetBytes": mem, "usageBytes": mem}})
            pod_cpu += rate
            pod_mem += mem
            pod_ns += ns
        pods.append({"podRef": {"name": worker.name, "namespace": worker.namespace, "uid": worker.uid},
                     "startTime": worker.start_time, "containers": containers,
                     "cpu": {"time": rfc3339(), "usageNanoCores": pod_cpu, "usageCoreNanoSeconds": pod_ns},
                     "memory": {"time": rfc3339(), "workingSetBytes": pod_mem, "usageBytes": pod_mem}})
    return {"node": {"nodeName": agent.config.node_name, **node_usage(sampler)}, "pods": pods}


def usage_annotation(agent: Agent) -> dict[str, Any]:
    s = summary(agent)
    pods_cpu = sum(p["cpu"]["usageNanoCores"] for p in s["pods"])
    pods_mem = sum(p["memory"]["workingSetBytes"] for p in s["pods"])
    node = s["node"]
    return {"cpu": f"{node['cpu']['usageNanoCores'] // 1_000_000}m", "memory": str(node["memory"]["workingSetBytes"]),
            "podsCpu": f"{pods_cpu // 1_000_000}m", "podsMemory": str(pods_mem), "pods": len(s["pods"]), "time": rfc3339()}
