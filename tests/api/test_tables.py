"""Server-side Table output: Kubernetes' columns and cells for each kind kubectl prints."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from clusterctl.api.tables import human_duration, pod_summary, to_table

NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=timezone.utc)


def ago(**delta) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


# apimachinery's duration_test.go (TestHumanDuration and TestHumanDurationBoundaries), in seconds.
MS = 0.001
HOUR, DAY, YEAR = 3600, 86400, 365 * 86400
DURATIONS = [
    (1, "1s"), (70, "70s"), (190, "3m10s"), (70 * 60, "70m"), (47 * HOUR, "47h"), (49 * HOUR, "2d1h"),
    ((8 * 24 + 2) * HOUR, "8d"), (367 * DAY, "367d"), (2 * YEAR + 25 * HOUR, "2y1d"), (8 * YEAR + 2 * HOUR, "8y"),
    (-2, "<invalid>"), (-2 + 1e-9, "0s"), (0, "0s"), (1 - MS, "0s"), (120 - MS, "119s"), (120, "2m"),
    (121, "2m1s"), (600 - MS, "9m59s"), (600, "10m"), (601, "10m"), (3 * HOUR - MS, "179m"), (3 * HOUR, "3h"),
    (3 * HOUR + 60, "3h1m"), (8 * HOUR - MS, "7h59m"), (8 * HOUR, "8h"), (8 * HOUR + 59 * 60, "8h"),
    (2 * DAY - MS, "47h"), (2 * DAY, "2d"), (2 * DAY + HOUR, "2d1h"), (8 * DAY - MS, "7d23h"), (8 * DAY, "8d"),
    (8 * DAY + 23 * HOUR, "8d"), (2 * YEAR - MS, "729d"), (2 * YEAR, "2y"), (2 * YEAR + DAY - MS, "2y"),
    (2 * YEAR + DAY, "2y1d"), (5 * YEAR, "5y"), (8 * YEAR - MS, "7y364d"), (8 * YEAR, "8y"), (9 * YEAR, "9y"),
]


@pytest.mark.parametrize(("seconds", "expected"), DURATIONS)
def test_human_duration_matches_kubernetes(seconds, expected):
    assert human_duration(seconds) == expected


# ---------------------------------------------------------------------------- pods


def pod(*, phase="Running", containers=1, statuses=(), init=(), init_statuses=(), conditions=(), deleting=False,
        reason=None, **spec_extra) -> dict:
    spec = {"containers": [{"name": f"c{i}", "image": "busybox"} for i in range(containers)], **spec_extra}
    if init:
        spec["initContainers"] = list(init)
    obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "creationTimestamp": ago(minutes=5), "uid": "u"},
        "spec": spec,
        "status": {"phase": phase, "containerStatuses": list(statuses), "conditions": list(conditions)},
    }
    if init_statuses:
        obj["status"]["initContainerStatuses"] = list(init_statuses)
    if deleting:
        obj["metadata"]["deletionTimestamp"] = ago(seconds=1)
    if reason:
        obj["status"]["reason"] = reason
    return obj


RUNNING = {"name": "c0", "ready": True, "restartCount": 0, "state": {"running": {"startedAt": ago(minutes=4)}}}


def waiting(reason, name="c0", restarts=0, finished=None):
    status = {"name": name, "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}
    if finished:
        status["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": finished}}
    return status


def terminated(name="c0", code=0, reason=None, signal=None):
    term = {"exitCode": code}
    if reason:
        term["reason"] = reason
    if signal:
        term["signal"] = signal
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": term}}


POD_STATUS_CASES = [
    ("running", pod(statuses=[RUNNING]), "Running", "1/1", "0"),
    ("pending without statuses", pod(phase="Pending", statuses=[]), "Pending", "0/1", "0"),
    ("container creating", pod(phase="Pending", statuses=[waiting("ContainerCreating")]), "ContainerCreating", "0/1", "0"),
    ("crash loop with restarts", pod(statuses=[waiting("CrashLoopBackOff", restarts=3, finished=ago(minutes=2))]),
     "CrashLoopBackOff", "0/1", "3 (2m ago)"),
    ("image pull backoff", pod(phase="Pending", statuses=[waiting("ImagePullBackOff")]), "ImagePullBackOff", "0/1", "0"),
    ("completed", pod(phase="Succeeded", statuses=[terminated(reason="Completed")]), "Completed", "0/1", "0"),
    ("error exit", pod(phase="Failed", statuses=[terminated(code=1, reason="Error")]), "Error", "0/1", "0"),
    ("exit code without reason", pod(phase="Failed", statuses=[terminated(code=2)]), "ExitCode:2", "0/1", "0"),
    ("signal without reason", pod(phase="Failed", statuses=[terminated(code=137, signal=9)]), "Signal:9", "0/1", "0"),
    ("terminating", pod(statuses=[RUNNING], deleting=True), "Terminating", "1/1", "0"),
    ("deleted succeeded pod keeps Completed",
     pod(phase="Succeeded", statuses=[terminated(reason="Completed")], deleting=True), "Completed", "0/1", "0"),
    ("node lost", pod(statuses=[RUNNING], deleting=True, reason="NodeLost"), "Unknown", "1/1", "0"),
    ("evicted", pod(phase="Failed", reason="Evicted"), "Evicted", "0/1", "0"),
    ("init waiting", pod(phase="Pending", init=[{"name": "i0"}],
                         init_statuses=[{"name": "i0", "restartCount": 0, "state": {"running": {}}}],
                         statuses=[waiting("PodInitializing")]), "Init:0/1", "0/1", "0"),
    ("second init of two", pod(phase="Pending", init=[{"name": "i0"}, {"name": "i1"}],
                               init_statuses=[terminated("i0"), {"name": "i1", "restartCount": 0, "state": {"running": {}}}]),
     "Init:1/2", "0/1", "0"),
    ("init crash loop", pod(phase="Pending", init=[{"name": "i0"}],
                            init_statuses=[waiting("CrashLoopBackOff", name="i0", restarts=4, finished=ago(seconds=30))]),
     "Init:CrashLoopBackOff", "0/1", "4 (30s ago)"),
    ("init failed", pod(phase="Failed", init=[{"name": "i0"}], init_statuses=[terminated("i0", code=1, reason="Error")]),
     "Init:Error", "0/1", "0"),
    ("init exit code", pod(phase="Pending", init=[{"name": "i0"}], init_statuses=[terminated("i0", code=3)]),
     "Init:ExitCode:3", "0/1", "0"),
    ("sidecar counts as a container",
     pod(init=[{"name": "side", "restartPolicy": "Always"}],
         init_statuses=[{"name": "side", "ready": True, "started": True, "restartCount": 1,
                         "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=1)}}}],
         statuses=[RUNNING], conditions=[{"type": "Initialized", "status": "True"}]),
     "Running", "2/2", "1 (60s ago)"),
    ("completed with one running container and ready pod",
     pod(containers=2, statuses=[dict(RUNNING, name="c1"), terminated("c0", reason="Completed")],
         conditions=[{"type": "Ready", "status": "True"}]), "Running", "1/2", "0"),
    ("completed with one running container, pod not ready",
     pod(containers=2, statuses=[dict(RUNNING, name="c1"), terminated("c0", reason="Completed")]), "NotReady", "1/2", "0"),
    ("scheduling gated", pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]),
     "SchedulingGated", "0/1", "0"),
]


@pytest.mark.parametrize(("case", "obj", "status", "ready", "restarts"), POD_STATUS_CASES, ids=[c[0] for c in POD_STATUS_CASES])
def test_pod_status_column(case, obj, status, ready, restarts):
    row = to_table("Pod", [obj], now=NOW)["rows"][0]
    assert row["cells"][:4] == ["p", ready, status, restarts]
    assert row["cells"][4] == "5m"
    assert pod_summary(obj).reason == status


def test_pod_columns_and_wide_cells():
    obj = pod(statuses=[RUNNING], nodeName="node-1", readinessGates=[{"conditionType": "x/ready"}],
              conditions=[{"type": "x/ready", "status": "True"}])
    obj["status"]["podIPs"] = [{"ip": "10.244.1.5"}]
    table = to_table("Pod", [obj], wide=True, now=NOW)
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert table["columnDefinitions"][0]["format"] == "name"
    assert table["columnDefinitions"][0]["description"].startswith("Name must be unique within a namespace")
    assert table["rows"][0]["cells"][5:] == ["10.244.1.5", "node-1", "<none>", "1/1"]

    narrow = to_table("Pod", [obj], now=NOW)
    assert [c["name"] for c in narrow["columnDefinitions"]] == names[:5]
    assert len(narrow["rows"][0]["cells"]) == 5


def test_table_envelope_and_include_object():
    obj = pod(statuses=[RUNNING], phase="Succeeded")
    table = to_table("Pod", [obj], now=NOW, list_meta={"resourceVersion": "42"})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    row = table["rows"][0]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
    assert row["conditions"][0]["reason"] == "Succeeded"
    assert to_table("Pod", [obj], include_object="Object", now=NOW)["rows"][0]["object"] is obj
    assert "object" not in to_table("Pod", [obj], include_object="None", now=NOW)["rows"][0]
    assert "columnDefinitions" not in to_table("Pod", [obj], no_headers=True, now=NOW)
    with pytest.raises(ValueError):
        to_table("Pod", [obj], include_object="Everything")


class KindInfo:
    """What the kinds registry hands over: anything with a ``kind``."""

    group, version, kind, plural, namespaced, subresources = "apps", "v1", "Deployment", "deployments", True, ()


def _meta(name="x", **extra):
    return {"name": name, "creationTimestamp": ago(days=2, hours=3), **extra}


TEMPLATE = {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}}

KIND_CASES = [
    (KindInfo(), {"metadata": _meta("web"), "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
                  "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}},
     ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers", "Images", "Selector"],
     ["web", "2/3", 3, 2, "2d3h", "nginx,log", "nginx:1.25,busybox", "app=web"]),
    ("ReplicaSet", {"metadata": _meta("web-1"), "spec": {"replicas": 3, "template": TEMPLATE,
                                                           "selector": {"matchLabels": {"app": "web", "hash": "1"}}},
                    "status": {"replicas": 3, "readyReplicas": 1}},
     ["Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector"],
     ["web-1", 3, 3, 1, "2d3h", "nginx,log", "nginx:1.25,busybox", "app=web,hash=1"]),
    ("DaemonSet", {"metadata": _meta("ds"), "spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd", "a": "b"}, **TEMPLATE["spec"]}},
                                                      "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                                                                        {"key": "app", "operator": "Exists"}]}},
                   "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                              "updatedNumberScheduled": 3, "numberAvailable": 2}},
     ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age", "Containers", "Images", "Selector"],
     ["ds", 3, 3, 2, 3, 2, "a=b,disk=ssd", "2d3h", "nginx,log", "nginx:1.25,busybox", "app,tier in (a,b)"]),
    ("StatefulSet", {"metadata": _meta("db"), "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 3}},
     ["Name", "Ready", "Age", "Containers", "Images"], ["db", "3/3", "2d3h", "nginx,log", "nginx:1.25,busybox"]),
    ("Job", {"metadata": _meta("pi"), "spec": {"completions": 3, "template": TEMPLATE, "selector": {"matchLabels": {"job": "pi"}}},
             "status": {"succeeded": 3, "startTime": ago(minutes=10), "completionTime": ago(minutes=7, seconds=58),
                        "conditions": [{"type": "Complete", "status": "True"}]}},
     ["Name", "Status", "Completions", "Duration", "Age", "Containers", "Images", "Selector"],
     ["pi", "Complete", "3/3", "2m2s", "2d3h", "nginx,log", "nginx:1.25,busybox", "job=pi"]),
    ("Job", {"metadata": _meta("par"), "spec": {"parallelism": 2, "template": TEMPLATE},
             "status": {"startTime": ago(seconds=30), "active": 2}},
     None, ["par", "Running", "0/1 of 2", "30s", "2d3h", "nginx,log", "nginx:1.25,busybox", "<none>"]),
    ("Job", {"metadata": _meta("bad"), "spec": {"completions": 1, "template": TEMPLATE},
             "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}},
     None, ["bad", "Failed", "0/1", "", "2d3h", "nginx,log", "nginx:1.25,busybox", "<none>"]),
    ("CronJob", {"metadata": _meta("cj"), "spec": {"schedule": "*/5 * * * *", "suspend": False,
                                                   "jobTemplate": {"spec": {"template": TEMPLATE}}},
                 "status": {"active": [{"name": "cj-1"}], "lastScheduleTime": ago(minutes=3)}},
     ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age", "Containers", "Images", "Selector"],
     ["cj", "*/5 * * * *", "<none>", "False", 1, "3m", "2d3h", "nginx,log", "nginx:1.25,busybox", "<none>"]),
    ("Service", {"metadata": _meta("web"), "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                                                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                                                              {"port": 53, "protocol": "UDP"}],
                                                    "selector": {"app": "web"}}},
     ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"],
     ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "2d3h", "app=web"]),
    ("Service", {"metadata": _meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.11", "ports": [{"port": 443}]}},
     None, ["lb", "LoadBalancer", "10.96.0.11", "<pending>", "443/TCP", "2d3h", "<none>"]),
    ("Service", {"metadata": _meta("headless"), "spec": {"clusterIP": "None", "clusterIPs": ["None"]}},
     None, ["headless", "ClusterIP", "None", "<none>", "<none>", "2d3h", "<none>"]),
    ("Service", {"metadata": _meta("ext"), "spec": {"type": "ExternalName", "externalName": "example.org"}},
     None, ["ext", "ExternalName", "<none>", "example.org", "<none>", "2d3h", "<none>"]),
    ("Endpoints", {"metadata": _meta("web"), "subsets": [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 5)],
                                                          "ports": [{"port": 80}]}]},
     ["Name", "Endpoints", "Age"], ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "2d3h"]),
    ("Endpoints", {"metadata": _meta("none")}, None, ["none", "<none>", "2d3h"]),
    ("EndpointSlice", {"metadata": _meta("web-abc"), "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
                       "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}]},
     ["Name", "AddressType", "Ports", "Endpoints", "Age"], ["web-abc", "IPv4", "80", "10.0.0.1,10.0.0.2", "2d3h"]),
    ("EndpointSlice", {"metadata": _meta("empty"), "addressType": "IPv4"}, None, ["empty", "IPv4", "<unset>", "<unset>", "2d3h"]),
    ("Node", {"metadata": _meta("n1", labels={"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}),
              "spec": {"unschedulable": True},
              "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                         "addresses": [{"type": "InternalIP", "address": "10.200.0.2"}, {"type": "Hostname", "address": "n1"}],
                         "nodeInfo": {"kubeletVersion": "v1.32.0+clusterctl", "osImage": "Debian GNU/Linux 12",
                                      "kernelVersion": "6.1.0", "containerRuntimeVersion": "process://0.1"}}},
     ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"],
     ["n1", "Ready,SchedulingDisabled", "control-plane,worker", "2d3h", "v1.32.0+clusterctl", "10.200.0.2", "<none>",
      "Debian GNU/Linux 12", "6.1.0", "process://0.1"]),
    ("Node", {"metadata": _meta("n2"), "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}},
     None, ["n2", "NotReady", "<none>", "2d3h", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]),
    ("Node", {"metadata": _meta("n3")}, None, ["n3", "Unknown", "<none>", "2d3h", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]),
    ("Namespace", {"metadata": _meta("prod"), "status": {"phase": "Active"}}, ["Name", "Status", "Age"], ["prod", "Active", "2d3h"]),
    ("ConfigMap", {"metadata": _meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}},
     ["Name", "Data", "Age"], ["cfg", 3, "2d3h"]),
    ("Secret", {"metadata": _meta("s"), "type": "Opaque", "data": {"k": "dg=="}}, ["Name", "Type", "Data", "Age"], ["s", "Opaque", 1, "2d3h"]),
    ("ServiceAccount", {"metadata": _meta("default")}, ["Name", "Secrets", "Age"], ["default", 0, "2d3h"]),
    ("Lease", {"metadata": _meta("kube-scheduler"), "spec": {"holderIdentity": "cp-1_abc"}}, ["Name", "Holder", "Age"],
     ["kube-scheduler", "cp-1_abc", "2d3h"]),
    ("PriorityClass", {"metadata": _meta("high"), "value": 1000, "globalDefault": False},
     ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"], ["high", 1000, False, "2d3h", "<none>"]),
    ("PriorityClass", {"metadata": _meta("low"), "value": 1, "globalDefault": True, "preemptionPolicy": "Never"},
     None, ["low", 1, True, "2d3h", "Never"]),
    ("PodDisruptionBudget", {"metadata": _meta("pdb"), "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}},
     ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"], ["pdb", "2", "N/A", 1, "2d3h"]),
    ("PodDisruptionBudget", {"metadata": _meta("pdb2"), "spec": {"maxUnavailable": "25%"}}, None, ["pdb2", "N/A", "25%", 0, "2d3h"]),
    ("HorizontalPodAutoscaler",
     {"metadata": _meta("web"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 10,
                                         "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]},
      "status": {"currentReplicas": 3, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 73}}}]}},
     ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"],
     ["web", "Deployment/web", "cpu: 73%/50%", "1", 10, 3, "2d3h"]),
    ("HorizontalPodAutoscaler",
     {"metadata": _meta("new"), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                                         "metrics": [{"type": "Resource", "resource": {"name": "memory", "target": {"type": "Utilization", "averageUtilization": 80}}}]}},
     None, ["new", "Deployment/web", "memory: <unknown>/80%", "<unset>", 5, 0, "2d3h"]),
    ("Widget", {"metadata": _meta("w")}, ["Name", "Age"], ["w", "2d3h"]),
]


@pytest.mark.parametrize(("kind", "obj", "columns", "cells"), KIND_CASES,
                         ids=[f"{getattr(c[0], 'kind', c[0])}-{c[1]['metadata']['name']}" for c in KIND_CASES])
def test_kind_columns_and_cells(kind, obj, columns, cells):
    table = to_table(kind, [obj], wide=True, now=NOW)
    if columns is not None:
        assert [c["name"] for c in table["columnDefinitions"]] == columns
    assert table["rows"][0]["cells"] == cells
    assert len(table["rows"][0]["cells"]) == len(table["columnDefinitions"])


def test_priority_class_preemption_policy_is_wide_only():
    table = to_table("PriorityClass", [{"metadata": _meta("p"), "value": 5}], now=NOW)
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Value", "Global-Default", "Age"]


def test_events_columns_and_wide_cells():
    event = {
        "metadata": _meta("web.17a"), "type": "Warning", "reason": "BackOff", "count": 4,
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{nginx}"},
        "source": {"component": "kubelet", "host": "node-1"},
        "message": "Back-off restarting failed container\n",
        "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(seconds=40),
    }
    narrow = to_table("Event", [event], now=NOW)
    assert [c["name"] for c in narrow["columnDefinitions"]] == ["Last Seen", "Type", "Reason", "Object", "Message"]
    assert narrow["rows"][0]["cells"] == ["40s", "Warning", "BackOff", "pod/web-1", "Back-off restarting failed container"]
    wide = to_table("Event", [event], wide=True, now=NOW)["rows"][0]["cells"]
    assert wide[4:] == ["spec.containers{nginx}", "kubelet, node-1", "Back-off restarting failed container", "10m", 4, "web.17a"]


def test_series_event_uses_its_last_observation():
    event = {"metadata": _meta("e"), "eventTime": ago(minutes=9), "series": {"count": 7, "lastObservedTime": ago(seconds=5)},
             "involvedObject": {"kind": "Node"}, "type": "Normal", "reason": "R", "message": "m"}
    cells = to_table("Event", [event], wide=True, now=NOW)["rows"][0]["cells"]
    assert cells[0] == "5s" and cells[3] == "node" and cells[7] == "9m" and cells[8] == 7


def test_missing_creation_timestamp_prints_unknown_age():
    assert to_table("ConfigMap", [{"metadata": {"name": "c"}}], now=NOW)["rows"][0]["cells"] == ["c", 0, "<unknown>"]


def test_cells_follow_the_python_client_model_names():
    """Each printed field exists in the official client's model (guards against typos in paths)."""
    import kubernetes.client as k

    attribute_names = {
        k.V1PodStatus: ["podIPs", "nominatedNodeName", "initContainerStatuses", "containerStatuses"],
        k.V1ContainerStatus: ["restartCount", "lastState", "started", "ready"],
        k.V1DaemonSetStatus: ["desiredNumberScheduled", "currentNumberScheduled", "numberReady",
                              "updatedNumberScheduled", "numberAvailable"],
        k.V1CronJobSpec: ["timeZone", "suspend", "jobTemplate", "schedule"],
        k.V1PodDisruptionBudgetStatus: ["disruptionsAllowed"],
        k.V2HorizontalPodAutoscalerStatus: ["currentMetrics", "currentReplicas"],
        k.CoreV1Event: ["firstTimestamp", "lastTimestamp", "eventTime", "series", "involvedObject", "source"],
        k.V1NodeSystemInfo: ["kubeletVersion", "osImage", "kernelVersion", "containerRuntimeVersion"],
    }
    for model, fields in attribute_names.items():
        assert set(fields) <= set(model.attribute_map.values()), model.__name__


def test_a_malformed_stored_object_prints_unknown_cells_instead_of_failing_the_list():
    good = pod(statuses=[RUNNING])
    broken = pod(statuses=["not-a-status"])
    broken["metadata"]["name"] = "broken"
    rows = to_table("Pod", [good, broken], now=NOW)["rows"]
    assert rows[0]["cells"][2] == "Running"
    assert rows[1]["cells"] == ["broken", "<unknown>", "<unknown>", "<unknown>", "<unknown>"]
