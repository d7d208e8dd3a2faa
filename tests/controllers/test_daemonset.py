"""DaemonSets: a pod per eligible node, later nodes included, tainted ones skipped, rolling update."""

from __future__ import annotations

from clusterctl.controllers import pods as P
from clusterctl.controllers.daemonset import REVISION_LABEL, node_eligible


def test_eligibility_honours_selector_affinity_and_taints():
    node = {"metadata": {"name": "n", "labels": {"disk": "ssd"}}, "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}}
    assert not node_eligible({}, node)
    assert node_eligible({"tolerations": [{"key": "gpu", "operator": "Exists"}]}, node)
    assert not node_eligible({"nodeSelector": {"disk": "hdd"}, "tolerations": [{"operator": "Exists"}]}, node)
    cordoned = {"metadata": {"name": "c"}, "spec": {"taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]}}
    assert node_eligible({}, cordoned), "daemons tolerate cordoning"


async def test_daemonset_covers_late_node_skips_tainted_and_rolls(env):
    await env.start(controllers=("daemonset",))
    await env.add_nodes("ds-", 2)
    await env.add_nodes("ds-tainted-", 1, taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": "default"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{"name": "a", "image": "agent:v1"}]}}}}
    await env.api.create(ds)

    async def placed(expected: set[str], image: str = "agent:v1"):
        pods = [p for p in await env.pods(selector="app=agent") if P.is_active(p)]
        nodes = sorted(p["spec"]["nodeName"] for p in pods)
        ok = nodes == sorted(expected) and all(P.is_ready(p) and p["spec"]["containers"][0]["image"] == image for p in pods)
        return pods if ok else None

    await env.wait_for("one pod per untainted node", lambda: placed({"ds-0", "ds-1"}))
    await env.add_nodes("ds-late-", 1)
    await env.wait_for("late node covered", lambda: placed({"ds-0", "ds-1", "ds-late-0"}))

    async def status():
        s = (await env.api.get("daemonsets", "agent", namespace="default")).get("status") or {}
        return s if s.get("desiredNumberScheduled") == 3 and s.get("numberReady") == 3 and s.get("numberAvailable") == 3 else None
    await env.wait_for("status", status)

    await env.patch("daemonsets", "agent", {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "agent:v2"}]}}}},
                        namespace="default", type="strategic")
    pods = await env.wait_for("rolled to v2", lambda: placed({"ds-0", "ds-1", "ds-late-0"}, "agent:v2"))
    assert len({p["metadata"]["labels"][REVISION_LABEL] for p in pods}) == 1

    async def updated_status():  # the v2 generation's status, not the v1 one that already read 3/3/3
        ds = await env.api.get("daemonsets", "agent", namespace="default")
        s = ds.get("status") or {}
        want = {"desiredNumberScheduled": 3, "numberReady": 3, "numberAvailable": 3, "updatedNumberScheduled": 3}
        current = s.get("observedGeneration", 0) >= ds["metadata"]["generation"]
        return s if current and all(s.get(k) == v for k, v in want.items()) else None
    s = await env.wait_for("updated status", updated_status)
    assert s["updatedNumberScheduled"] == 3 and s["numberMisscheduled"] == 0
