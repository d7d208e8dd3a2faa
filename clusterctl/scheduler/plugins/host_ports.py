"""Filter: a pod's ``hostPort``s must be free on the node (same protocol, overlapping host IP)."""

from __future__ import annotations

from clusterctl.scheduler.framework import SKIP, SUCCESS, NodeInfo, PodInfo, Status, unschedulable

NAME = "NodePorts"


class HostPorts:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS if pod.host_ports else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        for wanted in pod.host_ports:
            if any(wanted.conflicts(used) for used in node.used_ports):
                return unschedulable(NAME, "node(s) didn't have free ports for the requested pod ports")
        return SUCCESS
