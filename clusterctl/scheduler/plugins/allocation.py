"""Scores on how full a node would be: LeastAllocated (prefer emptier nodes) and
BalancedAllocation (prefer nodes whose cpu and memory fractions stay close).

Both use "non-zero" requests (a container that requests nothing counts as 100m / 200Mi) as
kube-scheduler does, so a flood of request-less pods still spreads out.

Both read the same two fractions per node, so one pass computes both scores for a cycle
(``allocation_scores``), and each node keeps its pair memoized on its ``NodeInfo`` for the pod's
non-zero requests at the node's ``generation``: the cache bumps the generation whenever the
node's pods or allocatable change, so between two pods of a burst only the node that took the
last one is recomputed — every other node's scores are still exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from clusterctl.scheduler.framework import MAX_NODE_SCORE, NodeInfo, PodInfo

_NAME = attrgetter("name")


def _fractions(pod: PodInfo, node: NodeInfo) -> tuple[float, float]:
    alloc = node.allocatable
    cpu = (node.non_zero_cpu + pod.non_zero_cpu) / alloc.milli_cpu if alloc.milli_cpu else 1.0
    mem = (node.non_zero_memory + pod.non_zero_memory) / alloc.memory if alloc.memory else 1.0
    return min(cpu, 1.0), min(mem, 1.0)


def allocation_scores(pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> tuple[list[int], list[int]]:
    """(LeastAllocated, BalancedAllocation) raw scores aligned with ``nodes``, once per cycle."""
    cached = state.get("allocation.scores")
    if cached is not None:
        return cached  # type: ignore[return-value]
    pc, pm = pod.non_zero_cpu, pod.non_zero_memory
    least: list[int] = []
    balanced: list[int] = []
    for node in nodes:
        memo = node.score_memo
        if memo is not None and memo[0] == node.generation and memo[1] == pc and memo[2] == pm:
            least.append(memo[3])
            balanced.append(memo[4])
            continue
        ac, am = node.alloc_milli_cpu, node.alloc_memory
        cpu = (node.non_zero_cpu + pc) / ac if ac else 1.0
        mem = (node.non_zero_memory + pm) / am if am else 1.0
        if cpu > 1.0:
            cpu = 1.0
        if mem > 1.0:
            mem = 1.0
        la = int((2.0 - cpu - mem) * (MAX_NODE_SCORE / 2))
        ba = int((1 - abs(cpu - mem) / 2) * MAX_NODE_SCORE)  # std deviation of two values is |a - b| / 2
        node.score_memo = (node.generation, pc, pm, la, ba)
        least.append(la)
        balanced.append(ba)
    state["allocation.scores"] = (least, balanced)
    return least, balanced


class LeastAllocated:
    name = "LeastAllocated"
    weight = 1

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        cpu, mem = _fractions(pod, node)
        return int(((1 - cpu) + (1 - mem)) * MAX_NODE_SCORE / 2)

    def score_batch(self, pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> dict[str, int]:
        return dict(zip(map(_NAME, nodes), self.score_list(pod, nodes, state)))

    def score_list(self, pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> list[int]:
        """Normalized scores aligned with ``nodes`` (the cycle's hot path)."""
        return allocation_scores(pod, nodes, state)[0]

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
        return dict(zip(map(_NAME, nodes), self.score_list(pod, nodes, state)))

    def score_list(self, pod: PodInfo, nodes: Sequence[NodeInfo], state: dict[str, object]) -> list[int]:
        """Normalized scores aligned with ``nodes`` (the cycle's hot path)."""
        return allocation_scores(pod, nodes, state)[1]

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        return None
