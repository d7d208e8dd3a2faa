"""ReplicaSets: adopt matching orphans, release relabelled pods, delete the least useful pods first."""

from __future__ import annotations

from clusterctl.controllers import pods as P


def _pod(name: str, *, node: str | None = "n1", phase: str = "Running", ready: bool = True, since: str = "2026-01-01T00:00:00Z",
         created: str = "2026-01-01T00:00:00Z") -> dict:
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}]}}


def test_deletion_preference():
    pods = [
        _pod("ready-old", since="2026-01-01T00:00:00Z"),
        _pod("ready-new", since="2026-01-01T01:00:00Z"),
        _pod("unready", ready=False),
        _pod("pending", phase="Pending", ready=False),
        _pod("unscheduled", node=None, phase="Pending", ready=False),
    ]
    order = [p["metadata"]["name"] for p in sorted(pods, key=P.deletion_rank)]
    assert order == ["unscheduled", "pending", "unready", "ready-new", "ready-old"]


def rs(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"rs": name}},
                     "template": {"metadata": {"labels": {"rs": name}}, "spec": {"containers": [{"name": "c", "image": "img"}]}}}}


async def test_adopts_orphans_releases_relabelled_and_reports_status(env):
    await env.start(controllers=("replicaset",))
    await env.add_nodes("rs-", 2)
    await env.api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stray", "namespace": "default", "labels": {"rs": "keep"}},
                          "spec": {"containers": [{"name": "c", "image": "img"}]}})

    # the orphan must not be the pod a set deletes first (an unscheduled one would be, rightly,
    # if the set saw it only after making two pods of its own): let it run first
    async def stray_ready():
        return P.is_ready(await env.api.get("pods", "stray", namespace="default"))
    await env.wait_for("stray running", stray_ready)
    created = await env.api.create(rs("keep", 2))
    uid = created["metadata"]["uid"]

    async def owned(n: int):
        pods = [p for p in await env.pods(selector="rs=keep") if P.is_active(p)]
        mine = [p for p in pods if (P.controller_ref(p) or {}).get("uid") == uid]
        return mine if len(pods) == n and len(mine) == n else None
    pods = await env.wait_for("orphan adopted, one pod created", lambda: owned(2))
    names = {p["metadata"]["name"] for p in pods}
    assert "stray" in names, "the matching orphan was adopted, not replaced"
    other = next(n for n in names if n != "stray")
    assert other.startswith("keep-") and len(other) == len("keep-") + 5

    # relabel an owned pod: the set releases it and makes a replacement
    await env.patch("pods", "stray", {"metadata": {"labels": {"rs": "gone"}}}, namespace="default")
    await env.wait_for("replacement after release", lambda: owned(2))

    async def released():
        p = await env.api.get("pods", "stray", namespace="default")
        return not p["metadata"].get("ownerReferences")
    await env.wait_for("stray released", released)

    async def status():
        s = (await env.api.get("replicasets", "keep", namespace="default")).get("status") or {}
        return s if (s.get("replicas"), s.get("readyReplicas"), s.get("availableReplicas"), s.get("fullyLabeledReplicas")) == (2, 2, 2, 2) else None
    s = await env.wait_for("status", status)
    assert s["observedGeneration"] == created["metadata"]["generation"]
