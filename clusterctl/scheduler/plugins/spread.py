"""Score: spread pods of the same owner (ReplicaSet, StatefulSet, Job...) across nodes.

Fewer pods of the pod's controller already on a node is better (reverse-normalized count), the
node-level half of kube-scheduler's default topology spreading.
"""

from __future__ import annotations

from collections.abc import Sequence

from clusterctl.scheduler.framework import MAX_NODE_SCORE, SKIP, SUCCESS, NodeInfo, PodInfo, Status, default_normalize


class OwnerSpread:
    name = "OwnerSpread"
    weight = 2

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if pod.owner_uid else SKIP

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        if not pod.owner_uid:
            return 0
        return node.owner_counts.get(pod.owner_uid, 0)

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> None:
        if not pod.owner_uid:
            for k in scores:
                scores[k] = MAX_NODE_SCORE
            return
        default_normalize(scores, reverse=True)
