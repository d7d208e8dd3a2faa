"""Filter: the node is Ready and not cordoned (``spec.unschedulable``).

Kubernetes expresses both as taints (``node.kubernetes.io/unschedulable``, ``.../not-ready``,
``.../unreachable``) that DaemonSet pods tolerate; we honour the same tolerations, and word the
reasons as kube-scheduler does so the pending message reads the same.
"""

from __future__ import annotations

from clusterctl.scheduler.framework import SUCCESS, NodeInfo, PodInfo, Status, unschedulable
from clusterctl.scheduler.plugins.taints_tolerations import taint_text, tolerates

NAME = "NodeReadySchedulable"
UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
NOT_READY_TAINT = {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}
UNREACHABLE_TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}


class NodeReadySchedulable:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if node.unschedulable and not tolerates(pod.tolerations, UNSCHEDULABLE_TAINT):
            return unschedulable(NAME, "node(s) were unschedulable", resolvable=False)
        if node.ready != "True":
            taint = NOT_READY_TAINT if node.ready == "False" else UNREACHABLE_TAINT
            # If the node lifecycle controller already tainted the node, TaintToleration reports it.
            if not any(t.get("key") == taint["key"] for t in node.taints) and not tolerates(pod.tolerations, taint):
                return unschedulable(NAME, f"node(s) had untolerated taint {taint_text(taint)}", resolvable=False)
        return SUCCESS

    def filter_batch(self, pod: PodInfo, nodes: list[NodeInfo], failures: dict[str, Status]) -> list[NodeInfo]:
        passed = [node for node in nodes if node.usable]
        if len(passed) == len(nodes):
            return passed
        passed = []
        for node in nodes:
            status = self.filter(pod, node)
            if status is SUCCESS:
                passed.append(node)
            else:
                failures[node.name] = status
        return passed
