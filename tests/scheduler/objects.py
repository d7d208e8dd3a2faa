"""Tiny builders for Node and Pod dicts used across scheduler tests."""

from __future__ import annotations

from typing import Any


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110, ready: bool | None = True, labels: dict[str, str] | None = None,
         taints: list[dict[str, Any]] | None = None, unschedulable: bool = False) -> dict[str, Any]:
    conditions = [] if ready is None else [{"type": "Ready", "status": "True" if ready else "False"}]
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)}, "capacity": {"cpu": cpu, "memory": memory, "pods": str(pods)},
                   "conditions": conditions},
    }


def pod(name: str, *, cpu: str | None = None, memory: str | None = None, node_name: str | None = None, ns: str = "default",
        node_selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None, host_port: int | None = None,
        affinity: dict[str, Any] | None = None, priority: int | None = None, owner: str | None = None, init_cpu: str | None = None,
        labels: dict[str, str] | None = None) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "c", "image": "busybox", "resources": {"requests": requests} if requests else {}}
    if host_port:
        container["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    spec: dict[str, Any] = {"containers": [container]}
    if init_cpu:
        spec["initContainers"] = [{"name": "init", "image": "busybox", "resources": {"requests": {"cpu": init_cpu}}}]
    if node_name:
        spec["nodeName"] = node_name
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if affinity:
        spec["affinity"] = affinity
    if priority is not None:
        spec["priority"] = priority
    meta: dict[str, Any] = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {"phase": "Pending"}}
