"""Filter: ``spec.nodeSelector`` — every key must be a node label with exactly that value."""

from __future__ import annotations

from clusterctl.scheduler.framework import SKIP, SUCCESS, NodeInfo, PodInfo, Status, unschedulable
from clusterctl.scheduler.plugins.node_affinity import MISMATCH

NAME = "NodeSelector"


class NodeSelector:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS if pod.node_selector else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        labels = node.labels
        for key, value in pod.node_selector.items():
            if labels.get(key) != value:
                return unschedulable(NAME, MISMATCH, resolvable=False)
        return SUCCESS
