"""PodDisruptionBudget status: the arithmetic Kubernetes' disruption controller does, and it live."""

from __future__ import annotations

import pytest

from clusterctl.controllers.disruption import BudgetError, budget_status


def _pod(name: str, *, ready: bool = True, owner: str | None = "rs") -> dict:
    meta: dict = {"name": name}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": "u", "controller": True}]
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_min_available_number_counts_existing_pods():
    pods = [_pod("a"), _pod("b"), _pod("c", ready=False)]
    s = budget_status({"spec": {"minAvailable": 1}}, pods, lambda p: None)
    assert s == {"expectedPods": 3, "currentHealthy": 2, "desiredHealthy": 1, "disruptionsAllowed": 1}


def test_max_unavailable_uses_the_controllers_scale_so_a_missing_pod_still_counts():
    pods = [_pod("a"), _pod("b")]  # the controller wants 3; one is being recreated
    s = budget_status({"spec": {"maxUnavailable": 1}}, pods, lambda p: ("Deployment/ns/web", 3))
    assert s == {"expectedPods": 3, "currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0}
    s = budget_status({"spec": {"minAvailable": "50%"}}, pods, lambda p: ("Deployment/ns/web", 3))
    assert (s["desiredHealthy"], s["disruptionsAllowed"]) == (2, 0)  # 50% of 3 rounds up
    s = budget_status({"spec": {"maxUnavailable": "50%"}}, [_pod("a"), _pod("b"), _pod("c"), _pod("d")], lambda p: ("RS/x", 4))
    assert (s["desiredHealthy"], s["disruptionsAllowed"]) == (2, 2)


def test_a_pod_without_a_controller_makes_a_scale_based_budget_unusable():
    with pytest.raises(BudgetError, match="'lonely'"):
        budget_status({"spec": {"maxUnavailable": 1}}, [_pod("lonely", owner=None)], lambda p: None)


def test_no_expected_pods_allows_nothing():
    assert budget_status({"spec": {"maxUnavailable": 1}}, [], lambda p: None)["disruptionsAllowed"] == 0


def _deployment(replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "img"}]}}}}


async def test_live_status_follows_pods_and_scale(env):
    await env.start(controllers=("replicaset", "deployment", "disruption"))
    await env.add_nodes("pdb-", 2)
    await env.api.create(_deployment(3))
    await env.api.create({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
                          "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}})

    async def status(want: dict):
        s = (await env.api.get("poddisruptionbudgets", "web", namespace="default")).get("status") or {}
        return s if all(s.get(k) == v for k, v in want.items()) else None

    s = await env.wait_for("3 healthy, 1 allowed", lambda: status({"expectedPods": 3, "currentHealthy": 3, "desiredHealthy": 2,
                                                                  "disruptionsAllowed": 1}))
    cond = next(c for c in s["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")
    assert s["observedGeneration"] == 1

    # the Deployment scales up: the new pods are expected before they are healthy
    await env.patch("deployments", "web", {"spec": {"replicas": 5}}, namespace="default")
    await env.wait_for("5 healthy, 1 allowed", lambda: status({"expectedPods": 5, "currentHealthy": 5, "disruptionsAllowed": 1}))

    # a budget that allows nothing says why
    await env.patch("poddisruptionbudgets", "web", {"spec": {"maxUnavailable": 0}}, namespace="default")
    s = await env.wait_for("0 allowed", lambda: status({"disruptionsAllowed": 0, "desiredHealthy": 5, "observedGeneration": 2}))
    cond = next(c for c in s["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")
