"""Deletion semantics: finalizers, graceful pod deletion, propagation through ownerReferences
(Background, Foreground, Orphan), namespace termination."""

from __future__ import annotations

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _exists(read) -> bool:
    try:
        read()
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def _rs(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def _owned_pod(name: str, owner) -> dict:
    return {"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner.metadata.name, "uid": owner.metadata.uid,
        "controller": True}]}, "spec": {"containers": [{"name": "c", "image": "x"}]}}


def test_finalizers_hold_deletion_until_removed(kube):
    core, _ = kube
    core.create_namespaced_config_map("default", {"metadata": {"name": "fin", "finalizers": ["example.com/hold"]}})
    core.delete_namespaced_config_map("fin", "default")
    held = core.read_namespaced_config_map("fin", "default")
    assert held.metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("fin", "default", {"metadata": {"finalizers": ["example.com/hold", "new/one"]}})
    assert err.value.status == 422
    core.patch_namespaced_config_map("fin", "default", {"metadata": {"finalizers": None}})
    assert not _exists(lambda: core.read_namespaced_config_map("fin", "default"))


def test_bound_pod_is_deleted_gracefully(kube):
    core, _ = kube
    core.create_namespaced_pod("default", {"metadata": {"name": "graceful"}, "spec": {
        "nodeName": "n1", "terminationGracePeriodSeconds": 30, "containers": [{"name": "c", "image": "x"}]}})
    core.delete_namespaced_pod("graceful", "default")
    pod = core.read_namespaced_pod("graceful", "default")
    assert pod.metadata.deletion_timestamp is not None and pod.metadata.deletion_grace_period_seconds == 30
    # the node agent confirms with grace 0
    core.delete_namespaced_pod("graceful", "default", grace_period_seconds=0)
    assert not _exists(lambda: core.read_namespaced_pod("graceful", "default"))
    # a short grace period that nobody confirms: the server finishes it after grace + margin
    core.create_namespaced_pod("default", {"metadata": {"name": "orphaned"}, "spec": {
        "nodeName": "gone", "containers": [{"name": "c", "image": "x"}]}})
    # 5 s, not 1: the read right after the delete must not race the grace period on a loaded machine
    core.delete_namespaced_pod("orphaned", "default", grace_period_seconds=5)
    assert _exists(lambda: core.read_namespaced_pod("orphaned", "default"))
    _wait(lambda: not _exists(lambda: core.read_namespaced_pod("orphaned", "default")), timeout=30)


def test_background_propagation_deletes_dependents(kube):
    core, apps = kube
    rs = apps.create_namespaced_replica_set("default", _rs("bg"))
    core.create_namespaced_pod("default", _owned_pod("bg-1", rs))
    apps.delete_namespaced_replica_set("bg", "default")
    _wait(lambda: not _exists(lambda: core.read_namespaced_pod("bg-1", "default")))


def test_orphan_propagation_strips_owner_references(kube):
    core, apps = kube
    rs = apps.create_namespaced_replica_set("default", _rs("orph"))
    core.create_namespaced_pod("default", _owned_pod("orph-1", rs))
    apps.delete_namespaced_replica_set("orph", "default", propagation_policy="Orphan")
    pod = core.read_namespaced_pod("orph-1", "default")
    assert not pod.metadata.owner_references
    time.sleep(0.3)
    assert _exists(lambda: core.read_namespaced_pod("orph-1", "default"))


def test_foreground_propagation_removes_dependents_first(kube):
    core, apps = kube
    rs = apps.create_namespaced_replica_set("default", _rs("fg"))
    core.create_namespaced_pod("default", _owned_pod("fg-1", rs))
    apps.delete_namespaced_replica_set("fg", "default", propagation_policy="Foreground")
    _wait(lambda: not _exists(lambda: apps.read_namespaced_replica_set("fg", "default")))
    assert not _exists(lambda: core.read_namespaced_pod("fg-1", "default"))


def test_namespace_deletion_removes_its_contents(kube):
    core, apps = kube
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "cm"}})
    core.create_namespaced_pod("doomed", {"metadata": {"name": "p"}, "spec": {
        "nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
    apps.create_namespaced_replica_set("doomed", _rs("rs"))
    # a finalizer holds the namespace in Terminating while the test looks at it (without it the server's
    # cleanup could finish before the next request on a loaded machine; it forces after 5 s here)
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    core.delete_namespace("doomed")
    ns = core.read_namespace("doomed")
    assert ns.status.phase == "Terminating"
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("doomed", {"metadata": {"name": "late"}})
    assert err.value.status == 403 and "being terminated" in err.value.body
    try:
        core.patch_namespaced_config_map("held", "doomed", {"metadata": {"finalizers": None}})
    except ApiException as exc:
        assert exc.status == 404, exc  # the 5 s cleanup deadline came first: forced away, fine
    _wait(lambda: not _exists(lambda: core.read_namespace("doomed")))
    assert core.list_namespaced_config_map("doomed").items == []
    assert core.list_namespaced_pod("doomed").items == []


def test_deletecollection_with_selector(kube):
    core, _ = kube
    for i in range(4):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"dc{i}", "labels": {"grp": "dc", "i": str(i % 2)}}})
    core.delete_collection_namespaced_config_map("default", label_selector="grp=dc,i=1")
    left = sorted(c.metadata.name for c in core.list_namespaced_config_map("default", label_selector="grp=dc").items)
    assert left == ["dc0", "dc2"]


def test_binding_sets_node_once(kube):
    core, _ = kube
    core.create_namespaced_pod("default", {"metadata": {"name": "bindme"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    body = client.V1Binding(metadata=client.V1ObjectMeta(name="bindme"),
                            target=client.V1ObjectReference(kind="Node", name="n7"))
    core.create_namespaced_pod_binding("bindme", "default", body, _preload_content=False)
    pod = core.read_namespaced_pod("bindme", "default")
    assert pod.spec.node_name == "n7"
    assert any(c.type == "PodScheduled" and c.status == "True" for c in pod.status.conditions)
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod_binding("bindme", "default", body, _preload_content=False)
    assert err.value.status == 409 and "already assigned" in err.value.body


def test_eviction_respects_budget_with_429(kube, control_plane):
    core, _ = kube
    core.create_namespace({"metadata": {"name": "evict"}})
    for i in range(3):
        core.create_namespaced_pod("evict", {"metadata": {"name": f"e{i}", "labels": {"app": "e"}},
                                             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}})
        core.patch_namespaced_pod_status(f"e{i}", "evict", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    pdb = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "e"},
           "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "e"}}}}
    assert control_plane.request("POST", "/apis/policy/v1/namespaces/evict/poddisruptionbudgets", pdb).status == 201
    ev = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "e0", "namespace": "evict"},
          "deleteOptions": {"gracePeriodSeconds": 0}}
    assert control_plane.request("POST", "/api/v1/namespaces/evict/pods/e0/eviction", ev).status == 201
    ev["metadata"]["name"] = "e1"
    r = control_plane.request("POST", "/api/v1/namespaces/evict/pods/e1/eviction", ev)
    assert r.status == 429
    assert r.json()["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert r.json()["details"]["causes"][0]["reason"] == "DisruptionBudget"
