"""run / expose / describe / scale / set image / rollout / label / annotate on hollow nodes."""

from __future__ import annotations

import json


def _pods(cluster, selector: str) -> list[dict]:
    return json.loads(cluster.ok("get", "pods", "-l", selector, "-o", "json"))["items"]


def _running(cluster, selector: str, n: int) -> bool:
    pods = [p for p in _pods(cluster, selector) if not p["metadata"].get("deletionTimestamp")]
    return len(pods) == n and all(p["status"].get("phase") == "Running" for p in pods)


def test_seed_walkthrough_verbs(cluster):
    assert cluster.ok("run", "web", "--image=registry.local/httpd:v1", "--port=8080").strip() == "deployment.apps/web created"
    cluster.wait(lambda: cluster.ok("get", "deployments", "web").splitlines()[1].split()[1] == "1/1", what="web 1/1")
    header = cluster.ok("get", "deployments").splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]

    assert cluster.ok("expose", "deployment", "web", "--type=NodePort", "--port=8080").strip() == "service/web exposed"
    row = cluster.ok("get", "services", "web").splitlines()[1].split()
    assert row[1] == "NodePort" and row[4].startswith("8080:") and row[4].endswith("/TCP")
    cluster.wait(lambda: "10.244." in cluster.ok("describe", "services/web"), what="endpoints")
    desc = cluster.ok("describe", "services/web")
    lines = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in desc.splitlines() if ":" in line and not line.startswith(" ")}
    assert lines["Name"] == "web" and lines["Type"] == "NodePort" and lines["Selector"] == "app=web"
    assert lines["Endpoints"].endswith(":8080") and lines["NodePort"].startswith("<unset>")

    assert cluster.ok("scale", "deployment", "web", "--replicas=4").strip() == "deployment.apps/web scaled"
    cluster.wait(lambda: _running(cluster, "app=web", 4), what="4 pods Running")
    assert {p["spec"]["nodeName"] for p in _pods(cluster, "app=web")} == {"hollow-0", "hollow-1"}

    assert cluster.ok("set", "image", "deployment/web", "web=registry.local/httpd:v2").strip() == "deployment.apps/web image updated"
    out = cluster.ok("rollout", "status", "deployment/web", "--timeout=30")
    assert out.splitlines()[-1] == 'deployment "web" successfully rolled out'
    images = {p["spec"]["containers"][0]["image"] for p in _pods(cluster, "app=web") if not p["metadata"].get("deletionTimestamp")}
    assert images == {"registry.local/httpd:v2"}
    history = cluster.ok("rollout", "history", "deploy/web").splitlines()
    assert history[0] == "deployment.apps/web" and [line.split()[0] for line in history[2:4]] == ["1", "2"]

    assert cluster.ok("rollout", "undo", "deploy/web").strip() == "deployment.apps/web rolled back"
    cluster.ok("rollout", "status", "deploy/web", "--timeout=30")
    dep = json.loads(cluster.ok("get", "deploy", "web", "-o", "json"))
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/httpd:v1"
    assert "pod-template-hash" not in dep["spec"]["template"]["metadata"]["labels"]

    desc = cluster.ok("describe", "deploy", "web")
    assert "Replicas:" in desc and "4 desired" in desc and "NewReplicaSet:" in desc and "ScalingReplicaSet" in desc
    pod = _pods(cluster, "app=web")[0]["metadata"]["name"]
    pdesc = cluster.ok("describe", "pod", pod)
    for key in ("Name:", "Namespace:", "Node:", "Labels:", "Status:", "IP:", "Containers:", "Conditions:", "Events:"):
        assert key in pdesc
    assert "Scheduled" in pdesc  # the scheduler's event

    assert "deleted" in cluster.ok("delete", "service", "web")
    assert cluster.ok("delete", "deployment", "web").strip() == 'deployment.apps "web" deleted'
    cluster.wait(lambda: not _pods(cluster, "app=web"), what="pods gone")


def test_describe_pending_pod_explains_the_scheduler(cluster):
    pod = """{"apiVersion":"v1","kind":"Pod","metadata":{"name":"stuck"},
              "spec":{"nodeSelector":{"disk":"ssd"},"containers":[{"name":"c","image":"x"}]}}"""
    cluster.ok("create", "-f", "-", stdin=pod)
    out = cluster.ok("describe", "pod", "stuck")
    assert "Status:           Pending" in out
    tail = out.split("Scheduling:", 1)[1]
    assert "hollow-0" in tail and "hollow-1" in tail  # one line per node, with the reason
    explain = cluster.ok("explain-schedule", "stuck")
    assert "hollow-0" in explain and "hollow-1" in explain
    cluster.ok("delete", "pod", "stuck", "--grace-period=0", "--force")


def test_label_and_annotate(cluster):
    cluster.ok("create", "configmap", "meta")
    assert cluster.ok("label", "cm", "meta", "tier=front").strip() == "configmap/meta labeled"
    r = cluster.run("label", "cm/meta", "tier=back")
    assert r.code != 0 and "--overwrite" in r.err
    cluster.ok("label", "cm/meta", "tier=back", "--overwrite")
    cluster.ok("annotate", "cm", "meta", "note=hello")
    meta = json.loads(cluster.ok("get", "cm", "meta", "-o", "json"))["metadata"]
    assert meta["labels"] == {"tier": "back"} and meta["annotations"]["note"] == "hello"
    cluster.ok("label", "cm", "meta", "tier-")
    assert "labels" not in json.loads(cluster.ok("get", "cm", "meta", "-o", "json"))["metadata"] or \
        json.loads(cluster.ok("get", "cm", "meta", "-o", "json"))["metadata"]["labels"] == {}
    cluster.ok("delete", "cm", "meta")


def test_rollout_pause_resume_restart(cluster):
    cluster.ok("create", "deployment", "paused", "--image=registry.local/p:v1")
    cluster.ok("rollout", "status", "deploy/paused", "--timeout=30")
    assert cluster.ok("rollout", "pause", "deploy/paused").strip() == "deployment.apps/paused paused"
    assert cluster.ok("rollout", "pause", "deploy/paused").strip() == "deployment.apps/paused already paused"
    cluster.ok("set", "image", "deploy/paused", "*=registry.local/p:v2")
    assert cluster.run("rollout", "status", "deploy/paused", "--watch=false").code == 1  # not rolled out while paused
    assert len(cluster.ok("rollout", "history", "deploy/paused").strip().splitlines()) == 3  # name, header, revision 1 only
    assert cluster.ok("rollout", "resume", "deploy/paused").strip() == "deployment.apps/paused resumed"
    cluster.ok("rollout", "status", "deploy/paused", "--timeout=30")
    assert _pods(cluster, "app=paused") and all(p["spec"]["containers"][0]["image"].endswith(":v2")
                                                for p in _pods(cluster, "app=paused") if not p["metadata"].get("deletionTimestamp"))
    assert cluster.ok("rollout", "restart", "deploy/paused").strip() == "deployment.apps/paused restarted"
    dep = json.loads(cluster.ok("get", "deploy", "paused", "-o", "json"))
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    cluster.ok("rollout", "status", "deploy/paused", "--timeout=30")
    assert [line.split()[0] for line in cluster.ok("rollout", "history", "deploy/paused").splitlines()[2:5]] == ["1", "2", "3"]
    cluster.ok("delete", "deploy", "paused")
