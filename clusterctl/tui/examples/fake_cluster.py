"""A small, fixed cluster for the TUI: ``python -m clusterctl.tui.examples.fake_cluster [VIEW]``.

Three nodes (one cordoned, one NotReady), pods in every colour (Running, Pending with a scheduler
explanation, CrashLoopBackOff, Completed, Terminating), a Deployment with an old and a new
ReplicaSet mid-rollout, a Service with endpoints, a Job, a CronJob, Warning events — all with
timestamps relative to a fixed ``NOW`` so ages never change between runs.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from clusterctl.tui._source import ClusterSource
from clusterctl.tui.app import ClusterApp

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)
FEED = Path(__file__).with_name("provision-feed.jsonl")


def ts(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, ns: str | None = None, age: float = 60, **extra) -> dict:
    m = {"name": name, "uid": f"uid-{ns or ''}-{name}", "resourceVersion": "1", "creationTimestamp": ts(age), **extra}
    if ns:
        m["namespace"] = ns
    return m


def node(name: str, *, ready: bool = True, cordoned: bool = False, role: str | None = None, age: float = 600) -> dict:
    labels = {"kubernetes.io/hostname": name}
    if role:
        labels[f"node-role.kubernetes.io/{role}"] = ""
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta(name, age=age, labels=labels),
            "spec": {"unschedulable": True} if cordoned else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "Unknown", "reason": "KubeletReady"}],
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}, "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "nodeInfo": {"kubeletVersion": "v1.32.0-clusterctl"},
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}


def pod(name: str, ns: str = "default", *, node_name: str | None = "node-a", phase: str = "Running", ready: bool = True,
        restarts: int = 0, waiting: str | None = None, terminated: str | None = None, labels: dict | None = None,
        owner: dict | None = None, ip: str = "10.244.0.10", age: float = 30, cpu: str = "250m", memory: str = "256Mi",
        deleting: bool = False, containers: int = 1) -> dict:
    m = meta(name, ns, age=age, labels=labels or {"app": name.rsplit("-", 2)[0]})
    if owner:
        m["ownerReferences"] = [owner]
    if deleting:
        m["deletionTimestamp"] = ts(0.1)
    names = ["app", "sidecar", "init"][:containers]
    state = {"running": {"startedAt": ts(age)}}
    if waiting:
        state = {"waiting": {"reason": waiting}}
    if terminated:
        state = {"terminated": {"reason": terminated, "exitCode": 0}}
    statuses = [{"name": c, "ready": ready, "restartCount": restarts, "image": f"registry.local/{c}:1", "state": state} for c in names]
    spec = {"containers": [{"name": c, "image": f"registry.local/{c}:1", "resources": {"requests": {"cpu": cpu, "memory": memory}}} for c in names]}
    status: dict = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if node_name:
        spec["nodeName"] = node_name
        status.update(podIP=ip, hostIP="10.0.0.1", containerStatuses=statuses, startTime=ts(age))
    else:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": "0/3 nodes are available: 3 Insufficient cpu."}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": status}


def fake_objects() -> list[dict]:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("web", "default", age=120),
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                       "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "app", "image": "registry.local/web:2"}]}}},
              "status": {"replicas": 4, "updatedReplicas": 2, "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1}}
    d_owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deploy["metadata"]["uid"], "controller": True}

    def rs(name: str, rev: str, replicas: int, ready: int) -> dict:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": meta(name, "default", age=100, ownerReferences=[d_owner], labels={"app": "web"},
                                 annotations={"deployment.kubernetes.io/revision": rev}),
                "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}},
                "status": {"replicas": replicas, "readyReplicas": ready, "availableReplicas": ready}}
    old, new = rs("web-6d4f8", "1", 2, 2), rs("web-7b9c1", "2", 2, 1)

    def owner(r: dict) -> dict:
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": r["metadata"]["name"], "uid": r["metadata"]["uid"], "controller": True}
    objects: list[dict] = [
        node("node-a", role="control-plane"), node("node-b"), node("node-c", ready=False, cordoned=True),
        *({"apiVersion": "v1", "kind": "Namespace", "metadata": meta(n, age=600), "status": {"phase": "Active"}}
          for n in ("default", "kube-system", "shop")),
        deploy, old, new,
        pod("web-6d4f8-aaaaa", owner=owner(old), labels={"app": "web"}, ip="10.244.0.11", cpu="500m", memory="1Gi"),
        pod("web-6d4f8-bbbbb", owner=owner(old), labels={"app": "web"}, node_name="node-b", ip="10.244.1.12", cpu="500m", memory="1Gi"),
        pod("web-7b9c1-ccccc", owner=owner(new), labels={"app": "web"}, ip="10.244.0.13", age=2, cpu="500m", memory="1Gi"),
        pod("web-7b9c1-ddddd", owner=owner(new), labels={"app": "web"}, node_name="node-b", ready=False, phase="Pending",
            waiting="ContainerCreating", ip="10.244.1.14", age=0.5),
        pod("api-5f7d9-eeeee", labels={"app": "api"}, restarts=7, ready=False, waiting="CrashLoopBackOff", node_name="node-b",
            ip="10.244.1.15", age=45, containers=2),
        pod("batch-import-xxxxx", labels={"app": "batch-import", "job-name": "batch-import"}, phase="Succeeded", ready=False,
            terminated="Completed", ip="10.244.0.16", age=50),
        pod("big-0", labels={"app": "big"}, node_name=None, phase="Pending", ready=False, cpu="16", age=5),
        pod("cart-0", "shop", labels={"app": "cart"}, ip="10.244.0.20", age=300),
        pod("old-cart-0", "shop", labels={"app": "old-cart"}, ip="10.244.0.21", age=300, deleting=True),
        pod("coredns-1", "kube-system", labels={"app": "coredns"}, ip="10.244.0.2", age=590, cpu="100m", memory="70Mi"),
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("web", "default", age=120),
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.20", "selector": {"app": "web"},
                  "ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta("web", "default", age=120),
         "subsets": [{"addresses": [{"ip": "10.244.0.11"}, {"ip": "10.244.1.12"}, {"ip": "10.244.0.13"}], "ports": [{"port": 8080}]}]},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta("kubernetes", "default", age=600),
         "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443, "protocol": "TCP"}]}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta("batch-import", "default", age=50),
         "spec": {"completions": 1, "selector": {"matchLabels": {"job-name": "batch-import"}}},
         "status": {"succeeded": 1, "startTime": ts(50), "completionTime": ts(48),
                    "conditions": [{"type": "Complete", "status": "True"}]}},
        {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("nightly", "default", age=500),
         "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {}}}, "status": {"lastScheduleTime": ts(300)}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("node-agent", "kube-system", age=600),
         "spec": {"selector": {"matchLabels": {"app": "node-agent"}}, "template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}},
         "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2, "updatedNumberScheduled": 3, "numberAvailable": 2}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("db", "shop", age=400),
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "db"}}}, "status": {"replicas": 1, "readyReplicas": 1}},
    ]
    events = [
        ("big-0.1", "Warning", "FailedScheduling", "Pod", "big-0", "0/3 nodes are available: 3 Insufficient cpu.", 1),
        ("api.1", "Warning", "BackOff", "Pod", "api-5f7d9-eeeee", "Back-off restarting failed container app", 2),
        ("node-c.1", "Warning", "NodeNotReady", "Node", "node-c", "Node node-c status is now: NodeNotReady", 3),
        ("web.1", "Normal", "ScalingReplicaSet", "Deployment", "web", "Scaled up replica set web-7b9c1 to 2", 4),
    ]
    for name, etype, reason, kind, obj, msg, ago in events:
        objects.append({"apiVersion": "v1", "kind": "Event", "metadata": meta(name, "default", age=ago), "type": etype,
                        "reason": reason, "message": msg, "count": 1, "firstTimestamp": ts(ago), "lastTimestamp": ts(ago),
                        "involvedObject": {"kind": kind, "name": obj, "namespace": "default", "uid": f"uid-default-{obj}"},
                        "source": {"component": "clusterctl"}})
    return objects


def make_app(view: str = "pods", *, feed: Path | None = FEED, **kwargs) -> ClusterApp:
    return ClusterApp(ClusterSource.static(fake_objects()), start_view=view, now=lambda: NOW, context="fake-cluster",
                      feed=feed, **kwargs)


app = make_app()

if __name__ == "__main__":
    make_app(sys.argv[1] if len(sys.argv) > 1 else "pods").run()
