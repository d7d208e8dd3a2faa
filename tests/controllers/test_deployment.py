"""Deployments against a real API server, the scheduler and hollow nodes; invariants from a watch."""

from __future__ import annotations

import asyncio
from typing import Any

from clusterctl.controllers import pods as P
from clusterctl.controllers.deployment import HASH_LABEL, REVISION, resolve, surge_and_unavailable, template_hash


def deployment(name: str, image: str, replicas: int = 4, **strategy: Any) -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": strategy or {"maxSurge": 1, "maxUnavailable": 1}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image}], "terminationGracePeriodSeconds": 1}}},
    }


class InvariantWatch:
    """Follows the deployment's pods from a watch; checks the rollout bounds at every event."""

    def __init__(self, api, app: str, *, low: int, high: int) -> None:
        self.api, self.app, self.low, self.high = api, app, low, high
        self.pods: dict[str, dict] = {}
        self.events = 0
        self.violations: list[str] = []
        self.armed = False
        self.max_seen = 0
        self.min_ready_seen = 10**9

    async def run(self, resource_version: str) -> None:
        stream = self.api.watch("pods", namespace="default", label_selector=f"app={self.app}", resource_version=resource_version, timeout_seconds=120)
        async for etype, pod in stream:
            name = pod["metadata"]["name"]
            if etype == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = pod
            self.events += 1
            self.check()

    def check(self) -> None:
        live = [p for p in self.pods.values() if P.is_active(p)]
        ready = sum(1 for p in live if P.is_ready(p))
        # every pod object still present counts toward the surge bound (terminating ones too)
        present = len(self.pods)
        self.max_seen = max(self.max_seen, len(live))
        if not self.armed:
            return
        self.min_ready_seen = min(self.min_ready_seen, ready)
        if len(live) > self.high:
            self.violations.append(f"event {self.events}: {len(live)} live pods > {self.high}")
        if ready < self.low:
            self.violations.append(f"event {self.events}: {ready} ready pods < {self.low} (present {present})")


async def kubectl(env, *args: str, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec("kubectl", "--kubeconfig", str(env.kubeconfig), *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    text = out.decode()
    assert not check or proc.returncode == 0, f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{text}"
    return text


async def rolled_out(env, name: str, image: str):
    async def probe():
        d = await env.api.get("deployments", name, namespace="default")
        s, replicas = d.get("status") or {}, d["spec"]["replicas"]
        done = (s.get("observedGeneration", 0) >= d["metadata"]["generation"] and s.get("updatedReplicas") == replicas
                and s.get("replicas") == replicas and s.get("availableReplicas") == replicas
                and d["spec"]["template"]["spec"]["containers"][0]["image"] == image)
        return d if done else None
    return await env.wait_for(f"{name} rolled out with {image}", probe, timeout=60)


def test_fenceposts_round_like_kubernetes():
    assert resolve("25%", 10, round_up=True) == 3 and resolve("25%", 10, round_up=False) == 2
    d = deployment("x", "a", replicas=3, maxSurge=0, maxUnavailable="10%")
    assert surge_and_unavailable(d) == (0, 1)  # both zero → one may be unavailable
    t = deployment("x", "a")["spec"]["template"]
    assert template_hash(t) == template_hash({**t}) and template_hash(t) != template_hash(t, 1)


async def test_rolling_update_bounds_undo_and_history(env):
    await env.start(controllers=("replicaset", "deployment"))
    await env.add_nodes("dep-", 3, ready_delay=0.15)
    await env.api.create(deployment("web", "registry.local/web:v1"))
    first = await rolled_out(env, "web", "registry.local/web:v1")
    assert (await kubectl(env, "rollout", "status", "deployment/web", "--timeout=20s")).strip().endswith("successfully rolled out")

    listing = await env.api.list("pods", namespace="default", label_selector="app=web")
    watcher = InvariantWatch(env.api, "web", low=4 - 1, high=4 + 1)
    task = asyncio.create_task(watcher.run(listing["metadata"]["resourceVersion"]))
    for p in listing["items"]:
        watcher.pods[p["metadata"]["name"]] = p
    watcher.armed = True
    try:
        await env.patch("deployments", "web", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}]}}}},
                            namespace="default", type="strategic")
        await rolled_out(env, "web", "registry.local/web:v2")
        await kubectl(env, "rollout", "status", "deployment/web", "--timeout=20s")
        await env.wait_for("old pods gone", lambda: _settled(env, "web", 4))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watcher.events > 8, "the watch saw the rollout"
    assert not watcher.violations, watcher.violations[:5]
    assert watcher.max_seen == 5, "the rollout used its surge"

    sets = (await env.api.list("replicasets", namespace="default", label_selector="app=web"))["items"]
    assert sorted(int(rs["metadata"]["annotations"][REVISION]) for rs in sets) == [1, 2]
    for rs in sets:
        h = rs["metadata"]["labels"][HASH_LABEL]
        assert rs["metadata"]["name"] == f"web-{h}" and rs["spec"]["selector"]["matchLabels"][HASH_LABEL] == h
        assert rs["metadata"]["ownerReferences"][0]["uid"] == first["metadata"]["uid"]
    history = await kubectl(env, "rollout", "history", "deployment/web")
    assert "1 " in history and "2 " in history

    # rollout undo: kubectl patches the template back client-side; the v1 ReplicaSet comes back as revision 3
    await kubectl(env, "rollout", "undo", "deployment/web")
    d = await rolled_out(env, "web", "registry.local/web:v1")
    await kubectl(env, "rollout", "status", "deployment/web", "--timeout=20s")
    sets = (await env.api.list("replicasets", namespace="default", label_selector="app=web"))["items"]
    assert len(sets) == 2, "undo reused the old ReplicaSet"
    v1 = next(rs for rs in sets if rs["spec"]["template"]["spec"]["containers"][0]["image"].endswith("v1"))
    assert v1["metadata"]["annotations"][REVISION] == "3" and v1["spec"]["replicas"] == 4
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert d["status"]["unavailableReplicas"] == 0


async def _settled(env, app: str, n: int):
    pods = await env.pods(selector=f"app={app}")
    return len(pods) == n and all(P.is_ready(p) for p in pods)


async def test_pause_resume_restart_and_recreate(env):
    await env.start(controllers=("replicaset", "deployment"))
    await env.add_nodes("pr-", 2)
    await env.api.create(deployment("api", "img:v1", replicas=2))
    await rolled_out(env, "api", "img:v1")
    await kubectl(env, "rollout", "pause", "deployment/api")
    await env.patch("deployments", "api", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "img:v2"}]}}}},
                        namespace="default", type="strategic")

    async def paused_seen():  # the controller has handled the paused, changed template (not a guessed sleep)
        d = await env.api.get("deployments", "api", namespace="default")
        s = d.get("status") or {}
        conds = {c["type"]: c for c in s.get("conditions") or []}
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and conds.get("Progressing", {}).get("reason") == "DeploymentPaused")
    await env.wait_for("Progressing=DeploymentPaused for the new generation", paused_seen)
    sets = (await env.api.list("replicasets", namespace="default", label_selector="app=api"))["items"]
    assert len(sets) == 1, "paused: no rollout"
    await kubectl(env, "rollout", "resume", "deployment/api")
    await rolled_out(env, "api", "img:v2")
    await kubectl(env, "rollout", "restart", "deployment/api")
    await env.wait_for("restart rollout", lambda: _three_sets(env, "api"))
    await kubectl(env, "rollout", "status", "deployment/api", "--timeout=20s")

    # Recreate: never an old and a new pod at once
    spec = deployment("batch", "img:v1", replicas=3)
    spec["spec"]["strategy"] = {"type": "Recreate"}
    await env.api.create(spec)
    await rolled_out(env, "batch", "img:v1")
    listing = await env.api.list("pods", namespace="default", label_selector="app=batch")
    mixed: list[str] = []

    async def follow():
        pods = {p["metadata"]["name"]: p for p in listing["items"]}
        async for etype, pod in env.api.watch("pods", namespace="default", label_selector="app=batch",
                                              resource_version=listing["metadata"]["resourceVersion"], timeout_seconds=60):
            if etype == "DELETED":
                pods.pop(pod["metadata"]["name"], None)
            else:
                pods[pod["metadata"]["name"]] = pod
            images = {p["spec"]["containers"][0]["image"] for p in pods.values()}
            if len(images) > 1:
                mixed.append(str(images))

    task = asyncio.create_task(follow())
    try:
        await env.patch("deployments", "batch", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "img:v2"}]}}}},
                            namespace="default", type="strategic")
        await rolled_out(env, "batch", "img:v2")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not mixed, mixed[:3]


async def _three_sets(env, app: str):
    sets = (await env.api.list("replicasets", namespace="default", label_selector=f"app={app}"))["items"]
    return len(sets) == 3


async def test_progress_deadline_and_revision_history_limit(env):
    from clusterctl.sim.hollow import ANNOTATION_NEVER_READY
    await env.start(controllers=("replicaset", "deployment"))
    await env.add_nodes("pd-", 2)
    d = deployment("stuck", "img:v1", replicas=2)
    d["spec"]["revisionHistoryLimit"] = 1
    await env.api.create(d)
    await rolled_out(env, "stuck", "img:v1")
    for image in ("img:v2", "img:v3"):
        await env.patch("deployments", "stuck", {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": image}]}}}},
                        namespace="default", type="strategic")
        await rolled_out(env, "stuck", image)

    async def history():
        sets = (await env.api.list("replicasets", namespace="default", label_selector="app=stuck"))["items"]
        return sets if len(sets) == 2 else None
    sets = await env.wait_for("only one old ReplicaSet kept", history)
    assert sorted(s["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for s in sets) == ["2", "3"]

    # a template whose pods never become ready: Progressing=False ProgressDeadlineExceeded after the deadline
    await env.patch("deployments", "stuck", {"spec": {"progressDeadlineSeconds": 1, "template": {
        "metadata": {"annotations": {ANNOTATION_NEVER_READY: "true"}}}}}, namespace="default", type="strategic")

    async def exceeded():
        dep = await env.api.get("deployments", "stuck", namespace="default")
        cond = next((c for c in dep["status"].get("conditions") or [] if c["type"] == "Progressing"), {})
        return dep if cond.get("status") == "False" and cond.get("reason") == "ProgressDeadlineExceeded" else None
    await env.wait_for("ProgressDeadlineExceeded", exceeded, timeout=30)
    out = await kubectl(env, "rollout", "status", "deployment/stuck", "--timeout=5s", check=False)
    assert "exceeded its progress deadline" in out, out
