"""The real kubectl (1.32, from PATH) against our API server: the verbs people use, with
Kubernetes' columns. Each test runs kubectl as a subprocess with the control plane's kubeconfig."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

MANIFESTS = Path(__file__).with_name("manifests")
SEED = ["namespace", "pod", "replicaset", "daemonset", "job", "service", "deployment", "redis"]


@pytest.fixture(scope="module")
def kubectl(control_plane, tmp_path_factory):
    cache = tmp_path_factory.mktemp("kube-cache")

    def run(*args: str, ok: bool = True, timeout: float = 30, stdin: str | None = None) -> subprocess.CompletedProcess:
        proc = subprocess.run(["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "--cache-dir", str(cache), *args],
                              capture_output=True, text=True, timeout=timeout, input=stdin)
        if ok:
            assert proc.returncode == 0, f"kubectl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc
    return run


def _header(text: str) -> list[str]:
    return text.splitlines()[0].split()


def test_version_and_api_resources(kubectl):
    out = kubectl("version").stdout
    assert "Server Version: v1.32.0+clusterctl." in out
    res = kubectl("api-resources").stdout
    lines = {line.split()[0]: line.split() for line in res.splitlines()[1:]}
    assert lines["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert lines["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    assert "endpointslices" in lines and "poddisruptionbudgets" in lines


def test_create_and_apply_seed_manifests(kubectl):
    for name in SEED:
        verb = "create" if name in ("namespace", "pod", "job") else "apply"
        out = kubectl(verb, "-f", str(MANIFESTS / f"{name}.yaml")).stdout
        assert "created" in out
    again = kubectl("apply", "-f", str(MANIFESTS / "deployment.yaml")).stdout
    assert "deployment.apps/nginx-deployment unchanged" in again


def test_reapply_after_edit_uses_strategic_merge(kubectl, tmp_path):
    text = (MANIFESTS / "deployment.yaml").read_text()
    edited = tmp_path / "deployment.yaml"
    edited.write_text(text.replace("replicas: 3", "replicas: 5").replace("nginx:1.7.9", "nginx:1.9.1"))
    assert "configured" in kubectl("apply", "-f", str(edited)).stdout
    d = json.loads(kubectl("get", "deployment", "nginx-deployment", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 5 and d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.9.1"
    assert d["metadata"]["generation"] == 2
    assert "unchanged" in kubectl("apply", "-f", str(edited)).stdout


def test_get_outputs_have_kubernetes_columns(kubectl):
    pods = kubectl("get", "pods").stdout
    assert _header(pods) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert "ecf-k8s-101" in pods and "Pending" in pods
    wide = kubectl("get", "pods", "-o", "wide").stdout
    assert _header(wide) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE", "NOMINATED", "NODE",
                             "READINESS", "GATES"]
    svc = kubectl("get", "svc", "my-nginx").stdout
    assert _header(svc) == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "80/TCP" in svc
    deploy = kubectl("get", "deploy").stdout
    assert _header(deploy) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    everything = kubectl("get", "all", "-A").stdout
    assert "kube-system" in everything and "daemonset.apps/fluentd-elasticsearch" in everything
    assert kubectl("get", "pods", "-o", "name").stdout.split() == ["pod/ecf-k8s-101"]
    y = kubectl("get", "pod", "ecf-k8s-101", "-o", "yaml").stdout
    assert "kind: Pod" in y and "resourceVersion:" in y
    assert kubectl("get", "rs", "-l", "tier=frontend", "-o", "name").stdout.strip() == "replicaset.apps/frontend"
    assert "No resources found" in kubectl("get", "pods", "-l", "app=nothing").stderr


def test_describe(kubectl, control_plane):
    uid = control_plane.request("GET", "/api/v1/namespaces/default/pods/ecf-k8s-101").json()["metadata"]["uid"]
    control_plane.request("POST", "/api/v1/namespaces/default/events", {
        "metadata": {"name": "ecf.1"}, "involvedObject": {"kind": "Pod", "namespace": "default",
                                                          "name": "ecf-k8s-101", "apiVersion": "v1", "uid": uid},
        "reason": "Scheduled", "message": "Successfully assigned default/ecf-k8s-101 to n1", "type": "Normal",
        "source": {"component": "default-scheduler"}, "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z", "count": 1})
    pod = kubectl("describe", "pod", "ecf-k8s-101").stdout
    assert "static-nginx" in pod and "QoS Class:" in pod and "Successfully assigned default/ecf-k8s-101" in pod
    assert "Replicas:" in kubectl("describe", "deployment", "nginx-deployment").stdout
    svc = kubectl("describe", "service", "my-nginx").stdout
    assert "10.96." in svc and "80/TCP" in svc
    events = kubectl("get", "events").stdout
    assert "Scheduled" in events and "pod/ecf-k8s-101" in events


def test_patch_label_annotate_scale(kubectl):
    kubectl("patch", "deployment", "nginx-deployment", "-p", '{"spec":{"replicas":2}}')
    kubectl("patch", "deployment", "nginx-deployment", "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "deployment", "nginx-deployment", "--type=json",
            "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    d = json.loads(kubectl("get", "deployment", "nginx-deployment", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 4 and d["metadata"]["labels"]["m"] == "1"
    kubectl("label", "pod", "ecf-k8s-101", "env=prod")
    kubectl("annotate", "pod", "ecf-k8s-101", "note=hello")
    assert kubectl("get", "pods", "-l", "env=prod", "-o", "name").stdout.strip() == "pod/ecf-k8s-101"
    assert "scaled" in kubectl("scale", "deployment", "nginx-deployment", "--replicas=6").stdout
    assert "scaled" in kubectl("scale", "rs", "frontend", "--replicas=1").stdout
    assert kubectl("get", "deploy", "nginx-deployment", "-o", "jsonpath={.spec.replicas}").stdout == "6"
    bad = kubectl("patch", "deployment", "nginx-deployment", "--type=json", "-p", '[{"op":"bogus"}]', ok=False)
    assert bad.returncode != 0


def test_watch_prints_rows(kubectl, control_plane):
    import threading
    # rows are read as they come until the one wanted (a 4 s --request-timeout also bounded kubectl's
    # discovery and list, which a loaded machine can outlast); the stream may last 60 s, then it is stopped
    control_plane.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "listed"}})
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(control_plane.kubeconfig), "get", "configmaps",
                             "--watch", "--request-timeout=60s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    listed, watched = threading.Event(), threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("listed "):
                listed.set()
            if line.startswith("watched "):
                watched.set()
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert listed.wait(45), lines  # the list is printed: from now on only the watch can bring a new row
        control_plane.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "watched"}})
        assert watched.wait(45), lines
    finally:
        proc.kill()
        proc.wait(30)
        reader.join(30)
        proc.stderr.close()
    assert lines[0].split()[:3] == ["NAME", "DATA", "AGE"]


def test_create_namespace_and_delete(kubectl):
    assert "namespace/demo created" in kubectl("create", "namespace", "demo").stdout
    kubectl("create", "configmap", "c1", "-n", "demo", "--from-literal=a=b")
    assert "deleted" in kubectl("delete", "-f", str(MANIFESTS / "redis.yaml")).stdout
    assert "deleted" in kubectl("delete", "namespace", "demo", "--timeout=20s").stdout
    gone = kubectl("get", "namespace", "demo", ok=False)
    assert gone.returncode != 0 and 'namespaces "demo" not found' in gone.stderr
    missing = kubectl("delete", "pod", "nope", ok=False)
    assert 'pods "nope" not found' in missing.stderr


def test_drain_honours_disruption_budget(kubectl, control_plane):
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "drain-n1"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert control_plane.request("POST", "/api/v1/nodes", node).status == 201
    kubectl("create", "namespace", "drain")
    for i in range(2):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "labels": {"app": "db"}},
               "spec": {"nodeName": "drain-n1", "containers": [{"name": "c", "image": "busybox"}]}}
        assert control_plane.request("POST", "/api/v1/namespaces/drain/pods", pod).status == 201
        st = control_plane.request("PATCH", f"/api/v1/namespaces/drain/pods/p{i}/status",
                                   {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
                                   content_type="application/merge-patch+json")
        assert st.status == 200
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "db"}}}}
    assert control_plane.request("POST", "/apis/policy/v1/namespaces/drain/poddisruptionbudgets", pdb).status == 201
    blocked = kubectl("drain", "drain-n1", "--timeout=3s", "--force", "--pod-selector=app=db", ok=False, timeout=40)
    assert blocked.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget" in blocked.stderr + blocked.stdout
    assert control_plane.request("GET", "/api/v1/namespaces/drain/pods/p0").status == 200
    control_plane.request("DELETE", "/apis/policy/v1/namespaces/drain/poddisruptionbudgets/db")
    done = kubectl("drain", "drain-n1", "--timeout=20s", "--force", "--grace-period=0", "--pod-selector=app=db", timeout=40)
    assert "drained" in done.stdout
    assert "SchedulingDisabled" in kubectl("get", "node", "drain-n1").stdout


def test_generators_that_send_protobuf(kubectl, control_plane):
    """`kubectl create <kind>` generators use typed clients that send protobuf bodies."""
    kubectl("create", "namespace", "gen")
    kubectl("create", "deployment", "d1", "-n", "gen", "--image=nginx:1.25", "--replicas=2", "--port=80")
    d = json.loads(kubectl("get", "deploy", "d1", "-n", "gen", "-o", "json").stdout)
    assert d["spec"]["replicas"] == 2 and d["spec"]["selector"] == {"matchLabels": {"app": "d1"}}
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "nginx:1.25" and c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert "creationTimestamp" not in d["spec"]["template"]["metadata"]
    kubectl("create", "deployment", "d0", "-n", "gen", "--image=nginx", "--replicas=0")
    assert kubectl("get", "deploy", "d0", "-n", "gen", "-o", "jsonpath={.spec.replicas}").stdout == "0"
    kubectl("create", "job", "j1", "-n", "gen", "--image=busybox", "--", "echo", "hi")
    kubectl("create", "cronjob", "c1", "-n", "gen", "--image=busybox", "--schedule=*/5 * * * *", "--", "date")
    kubectl("create", "service", "nodeport", "s2", "-n", "gen", "--tcp=80:8080")
    svc = json.loads(kubectl("get", "svc", "s2", "-n", "gen", "-o", "json").stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 8080 and 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    kubectl("create", "pdb", "p1", "-n", "gen", "--selector=app=d1", "--min-available=50%")
    kubectl("create", "configmap", "cm", "-n", "gen", "--from-literal=k=v")
    kubectl("create", "secret", "generic", "sec", "-n", "gen", "--from-literal=k=v")
    kubectl("create", "priorityclass", "gen-high", "--value=1000")
    # kubectl 1.32 autoscale creates autoscaling/v1 HPAs: served by conversion, stored as v2
    kubectl("autoscale", "deployment", "d1", "-n", "gen", "--min=1", "--max=5", "--cpu-percent=60")
    hpa = json.loads(kubectl("get", "hpa", "d1", "-n", "gen", "-o", "json").stdout)
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["maxReplicas"] == 5
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    v1 = control_plane.request("GET", "/apis/autoscaling/v1/namespaces/gen/horizontalpodautoscalers/d1").json()
    assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 60
    assert "autoscaled" in kubectl("autoscale", "deployment", "d0", "-n", "gen", "--max=3").stdout

    names = kubectl("get", "deploy,job,cronjob,svc,pdb,cm,secret", "-n", "gen", "-o", "name").stdout.split()
    assert {"deployment.apps/d1", "job.batch/j1", "cronjob.batch/c1", "service/s2",
            "poddisruptionbudget.policy/p1", "configmap/cm", "secret/sec"} <= set(names)
