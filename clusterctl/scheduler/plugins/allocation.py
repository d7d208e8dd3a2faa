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


def _all_fractions(pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> list[tuple[str, float, float]]:
    """(name, cpu fraction, memory fraction) per node, computed once per cycle for both scorers."""
    cached = state.get("allocation.fractions")
    if cached is not None:
        return cached  # type: ignore[return-value]
    pc, pm = pod.non_zero_cpu, pod.non_zero_memory
    out: list[tuple[str, float, float]] = []
    for node in nodes:
        alloc = node.allocatable
        cpu = (node.non_zero_cpu + pc) / alloc.milli_cpu if alloc.milli_cpu else 1.0
        mem = (node.non_zero_memory + pm) / alloc.memory if alloc.memory else 1.0
        out.append((node.name, 1.0 if cpu > 1.0 else cpu, 1.0 if mem > 1.0 else mem))
    state["allocation.fractions"] = out
    return out


class LeastAllocated:
    name = "LeastAllocated"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cpu, mem = _fractions(pod, node)
        return int(((1 - cpu) + (1 - mem)) * MAX_NODE_SCORE / 2)

    def score_batch(self, pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> dict[str, int]:
        half = MAX_NODE_SCORE / 2
        return {name: int((2.0 - cpu - mem) * half) for name, cpu, mem in _all_fractions(pod, nodes, state)}

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        return None


class BalancedAllocation:
    name = "BalancedAllocation"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cpu, mem = _fractions(pod, node)
        # std deviation of two values is |a - b| / 2
        return int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE)

    def score_batch(self, pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> dict[str, int]:
        return {name: int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE) for name, cpu, mem in _all_fractions(pod, nodes, state)}

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        return None
