"""Scores on how full a node would be: LeastAllocated (prefer emptier nodes) and
BalancedAllocation (prefer nodes whose cpu and memory fractions stay close).

Both use "non-zero" requests (a container that requests nothing counts as 100m / 200Mi) as
kube-scheduler does, so a flood of request-less pods still spreads out.
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterctl.scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo


def _fractions(pod: PodInfo, node: NodeInfo) -> tuple[float, float]:
    alloc = node.allocatable
    cpu = (node.non_zero_cpu + pod.non_zero_cpu) / alloc.milli_cpu if alloc.milli_cpu else 1.0
    mem = (node.non_zero_memory + pod.non_zero_memory) / alloc.memory if alloc.memory else 1.0
    return min(cpu, 1.0), min(mem, 1.0)


class LeastAllocated:
    name = "LeastAllocated"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cpu, mem = _fractions(pod, node)
        return int(((1 - cpu) + (1 - mem)) * MAX_NODE_SCORE / 2)

    def score_batch(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[str, int]:
        out: dict[str, int] = {}
        pc, pm = pod.non_zero_cpu, pod.non_zero_memory
        for node in nodes:
            alloc = node.allocatable
            cpu = (node.non_zero_cpu + pc) / alloc.milli_cpu if alloc.milli_cpu else 1.0
            mem = (node.non_zero_memory + pm) / alloc.memory if alloc.memory else 1.0
            cpu = 1.0 if cpu > 1.0 else cpu
            mem = 1.0 if mem > 1.0 else mem
            out[node.name] = int((2.0 - cpu - mem) * (MAX_NODE_SCORE / 2))
        return out

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        return None


class BalancedAllocation:
    name = "BalancedAllocation"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cpu, mem = _fractions(pod, node)
        # std deviation of two values is |a - b| / 2
        return int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE)

    def score_batch(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> dict[str, int]:
        out: dict[str, int] = {}
        pc, pm = pod.non_zero_cpu, pod.non_zero_memory
        for node in nodes:
            alloc = node.allocatable
            cpu = (node.non_zero_cpu + pc) / alloc.milli_cpu if alloc.milli_cpu else 1.0
            mem = (node.non_zero_memory + pm) / alloc.memory if alloc.memory else 1.0
            cpu = 1.0 if cpu > 1.0 else cpu
            mem = 1.0 if mem > 1.0 else mem
            out[node.name] = int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE)
        return out

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        return None
