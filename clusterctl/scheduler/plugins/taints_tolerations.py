"""Filter + score: taints and tolerations.

Filter: a ``NoSchedule`` or ``NoExecute`` taint the pod does not tolerate rules the node out
(``node(s) had untolerated taint {key: value}``, kube-scheduler's wording). Score: fewer
untolerated ``PreferNoSchedule`` taints is better (reverse-normalized count).
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from clusterctl.scheduler.framework import SKIP, SUCCESS, NodeInfo, PodInfo, Status, default_normalize, unschedulable

NAME = "TaintToleration"
_TAINTS = attrgetter("taints")


def toleration_matches(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    key = tol.get("key") or ""
    if not key:
        return op == "Exists"  # an empty key with Exists tolerates everything
    if key != taint.get("key"):
        return False
    if op == "Exists":
        return True
    return (tol.get("value") or "") == (taint.get("value") or "")


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    return any(toleration_matches(t, taint) for t in tolerations)


def taint_text(taint: dict[str, Any]) -> str:
    return "{%s: %s}" % (taint.get("key", ""), taint.get("value") or "")


class TaintToleration:
    name = NAME
    weight = 3

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        for taint in node.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(pod.tolerations, taint):
                return unschedulable(NAME, f"node(s) had untolerated taint {taint_text(taint)}", resolvable=False)
        return SUCCESS

    def filter_batch(self, pod: PodInfo, nodes: list[NodeInfo], failures: dict[str, Status]) -> list[NodeInfo]:
        if not any(map(_TAINTS, nodes)):
            return nodes
        passed: list[NodeInfo] = []
        for node in nodes:
            status = self.filter(pod, node) if node.taints else SUCCESS
            if status is SUCCESS:
                passed.append(node)
            else:
                failures[node.name] = status
        return passed

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if any(map(_TAINTS, nodes)) else SKIP

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return sum(1 for t in node.taints if t.get("effect") == "PreferNoSchedule" and not tolerates(pod.tolerations, t))

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)


__all__ = ["SKIP", "TaintToleration", "taint_text", "toleration_matches", "tolerates"]
