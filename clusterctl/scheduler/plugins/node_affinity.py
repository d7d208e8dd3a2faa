"""Filter + score: node affinity (``requiredDuringScheduling...`` and ``preferredDuringScheduling...``).

Terms are ORed, expressions inside a term ANDed; operators In, NotIn, Exists, DoesNotExist, Gt,
Lt; ``matchFields`` on ``metadata.name``. The preferred score is the sum of the weights of the
matching terms, normalized by the best node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clusterctl.scheduler.framework import SKIP, SUCCESS, NodeInfo, PodInfo, Status, default_normalize, unschedulable

NAME = "NodeAffinity"
MISMATCH = "node(s) didn't match Pod's node affinity/selector"


def requirement_matches(req: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = req.get("key", ""), req.get("operator", ""), req.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def term_matches(term: dict[str, Any], node: NodeInfo) -> bool:
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing (Kubernetes' rule)
    if not all(requirement_matches(r, node.labels) for r in exprs):
        return False
    return all(requirement_matches(r, {"metadata.name": node.name}) for r in fields)


class NodeAffinity:
    name = NAME
    weight = 2

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS if pod.required_terms is not None else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        terms = pod.required_terms
        if terms is None or any(term_matches(t, node) for t in terms):
            return SUCCESS
        return unschedulable(NAME, MISMATCH, resolvable=False)

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if pod.preferred_terms else SKIP

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return sum(int(p.get("weight") or 0) for p in pod.preferred_terms if term_matches(p.get("preference") or {}, node))

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores)
