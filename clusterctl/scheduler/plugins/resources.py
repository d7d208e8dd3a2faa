"""Filter: the pod's requests fit what the node has left (cpu, memory, pod count).

Requests follow Kubernetes: the sum over containers, or the largest init container if that is
more (init containers run one at a time, before the others), plus pod overhead; see
``framework.pod_requests``. Reasons are kube-scheduler's: ``Insufficient cpu``,
``Insufficient memory``, ``Too many pods`` — all resolvable by preemption.
"""

from __future__ import annotations

from clusterctl.scheduler.framework import SUCCESS, NodeInfo, PodInfo, Status, unschedulable

NAME = "NodeResourcesFit"


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """The resources this node lacks for the pod, in kube-scheduler's words."""
    reasons: list[str] = []
    alloc, used, want = node.allocatable, node.requested, pod.requests
    if used.pods + 1 > alloc.pods:
        reasons.append("Too many pods")
    if want.milli_cpu and used.milli_cpu + want.milli_cpu > alloc.milli_cpu:
        reasons.append("Insufficient cpu")
    if want.memory and used.memory + want.memory > alloc.memory:
        reasons.append("Insufficient memory")
    return reasons


class NodeResourcesFit:
    name = NAME

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        want = pod.requests
        # Fast path for the hot loop: everything fits.
        if node.free_pods > 0 and want.milli_cpu <= node.free_milli_cpu and want.memory <= node.free_memory:
            return SUCCESS
        reasons = insufficient(pod, node)
        return unschedulable(NAME, *reasons) if reasons else SUCCESS

    def filter_batch(self, pod: PodInfo, nodes: list[NodeInfo], failures: dict[str, Status]) -> list[NodeInfo]:
        cpu, mem = pod.requests.milli_cpu, pod.requests.memory
        passed = [node for node in nodes if node.free_pods > 0 and cpu <= node.free_milli_cpu and mem <= node.free_memory]
        if len(passed) == len(nodes):
            return passed
        passed = []
        for node in nodes:
            reasons = insufficient(pod, node)
            if reasons:
                failures[node.name] = unschedulable(NAME, *reasons)
            else:
                passed.append(node)
        return passed
