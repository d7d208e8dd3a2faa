"""The scheduler's cache: a ``NodeInfo`` per node holding the pods counted against it.

Pods count from the moment the scheduler *assumes* them onto a node (before the binding call
returns), so the next pod — scheduled microseconds later — already sees the node's resources as
taken. The informer's view of the bound pod confirms an assumption; a failed binding ``forget``s
it. A node removed while pods still point at it is kept aside (not schedulable) until they go.
"""

from __future__ import annotations

from clusterctl.scheduler.framework import NodeInfo, Obj, PodInfo


class SchedulerCache:
    def __init__(self) -> None:
        self._nodes: dict[str, NodeInfo] = {}
        self._present: set[str] = set()
        self._pod_node: dict[str, str] = {}
        self.assumed: set[str] = set()
        self._node_list: list[NodeInfo] | None = None

    # ----------------------------------------------------------------- nodes

    def set_node(self, node: Obj) -> NodeInfo:
        name = node["metadata"]["name"]
        info = self._nodes.get(name)
        if info is None:
            info = self._nodes[name] = NodeInfo.of(node)
        else:
            info.set_node(node)
        if name not in self._present:
            self._present.add(name)
            self._node_list = None
        return info

    def remove_node(self, name: str) -> None:
        self._present.discard(name)
        self._node_list = None
        info = self._nodes.get(name)
        if info is not None and not info.pods:
            del self._nodes[name]

    def node_list(self) -> list[NodeInfo]:
        """Schedulable-candidate nodes in a stable order (the sampling walks it round-robin)."""
        if self._node_list is None:
            self._node_list = [self._nodes[n] for n in sorted(self._present)]
        return self._node_list

    def node(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name) if name in self._present else None

    # ----------------------------------------------------------------- pods

    def _info_for(self, node_name: str) -> NodeInfo:
        info = self._nodes.get(node_name)
        if info is None:  # a pod bound to a node we have not seen (yet): keep its count aside
            info = self._nodes[node_name] = NodeInfo.of({"metadata": {"name": node_name}})
        return info

    def add_pod(self, pod: PodInfo, node_name: str) -> None:
        """A bound pod (from the informer): confirms an assumption or counts a new pod."""
        old = self._pod_node.get(pod.key)
        if old is not None and old != node_name:
            self.remove_pod(pod.key)
        self.assumed.discard(pod.key)
        self._info_for(node_name).add_pod(pod)
        self._pod_node[pod.key] = node_name

    def assume(self, pod: PodInfo, node_name: str) -> None:
        self.add_pod(pod, node_name)
        self.assumed.add(pod.key)

    def forget(self, key: str) -> None:
        """Undo an assumption (binding failed)."""
        if key in self.assumed:
            self.remove_pod(key)

    def remove_pod(self, key: str) -> None:
        self.assumed.discard(key)
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return
        info = self._nodes.get(node_name)
        if info is None:
            return
        info.remove_pod(key)
        if node_name not in self._present and not info.pods:
            del self._nodes[node_name]

    def pod(self, key: str) -> PodInfo | None:
        node_name = self._pod_node.get(key)
        info = self._nodes.get(node_name) if node_name is not None else None
        return info.pods.get(key) if info is not None else None

    def node_of(self, key: str) -> str | None:
        return self._pod_node.get(key)

    def __len__(self) -> int:
        return len(self._present)
