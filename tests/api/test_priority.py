"""Priority admission: a new Pod's spec.priority/preemptionPolicy come from its PriorityClass."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException


def _pod(name: str, **spec_extra) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec_extra}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def _pc(name: str, value: int, *, default: bool = False, policy: str | None = None) -> dict:
    pc: dict = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
                "value": value, "globalDefault": default}
    if policy:
        pc["preemptionPolicy"] = policy
    return pc


@pytest.fixture(scope="module")
def apis(control_plane):
    from clusterctl.api.testing import api_client
    api = api_client(control_plane)
    yield client.CoreV1Api(api), client.SchedulingV1Api(api)
    api.close()


def test_class_value_and_policy_are_copied_into_the_pod(apis):
    core, sched = apis
    core.create_namespace({"metadata": {"name": "prio-a"}})
    sched.create_priority_class(_pc("batch-low", 100, policy="Never"))
    pod = core.create_namespaced_pod("prio-a", _pod("a", priorityClassName="batch-low"))
    assert pod.spec.priority == 100
    assert pod.spec.preemption_policy == "Never"
    assert core.read_namespaced_pod("a", "prio-a").spec.priority == 100
    # the same value given explicitly is accepted
    same = core.create_namespaced_pod("prio-a", _pod("b", priorityClassName="batch-low", priority=100))
    assert same.spec.priority == 100
    # built-in system classes resolve without being stored
    crit = core.create_namespaced_pod("prio-a", _pod("crit", priorityClassName="system-node-critical"))
    assert crit.spec.priority == 2_000_001_000


def test_unknown_class_is_forbidden(apis):
    core, _ = apis
    core.create_namespace({"metadata": {"name": "prio-b"}})
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("prio-b", _pod("x", priorityClassName="nope"))
    assert err.value.status == 403
    body = json.loads(err.value.body)
    assert body["reason"] == "Forbidden"
    assert "no PriorityClass with name nope was found" in body["message"]


def test_pod_may_not_choose_its_own_priority(apis):
    core, sched = apis
    core.create_namespace({"metadata": {"name": "prio-c"}})
    sched.create_priority_class(_pc("mid", 500))
    for spec in ({"priorityClassName": "mid", "priority": 7}, {"priority": 1_000_000}):
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod("prio-c", _pod("x", **spec))
        assert err.value.status == 403
        assert "the integer value of priority" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        core.create_namespaced_pod("prio-c", _pod("y", priorityClassName="mid", preemptionPolicy="Never"))
    assert err.value.status == 403
    assert "PreemptionPolicy (Never)" in json.loads(err.value.body)["message"]


def test_no_class_is_zero_then_global_default(apis):
    core, sched = apis
    core.create_namespace({"metadata": {"name": "prio-d"}})
    plain = core.create_namespaced_pod("prio-d", _pod("before"))
    assert plain.spec.priority == 0 and not plain.spec.priority_class_name
    assert plain.spec.preemption_policy == "PreemptLowerPriority"
    sched.create_priority_class(_pc("everyone", 42, default=True))
    try:
        dflt = core.create_namespaced_pod("prio-d", _pod("after"))
        assert dflt.spec.priority == 42
        assert dflt.spec.priority_class_name == "everyone"
        with pytest.raises(ApiException) as err:
            core.create_namespaced_pod("prio-d", _pod("zero", priority=0))
        assert err.value.status == 403
    finally:
        sched.delete_priority_class("everyone")


def test_put_without_the_admitted_fields_keeps_them(apis, control_plane):
    core, sched = apis
    core.create_namespace({"metadata": {"name": "prio-e"}})
    sched.create_priority_class(_pc("kept", 9))
    body = _pod("p", priorityClassName="kept")
    core.create_namespaced_pod("prio-e", body)
    body["metadata"]["labels"] = {"rev": "2"}
    body["spec"].pop("priorityClassName")
    r = control_plane.request("PUT", "/api/v1/namespaces/prio-e/pods/p", body=body)
    assert r.status == 200, r.body
    got = core.read_namespaced_pod("p", "prio-e")
    assert (got.spec.priority, got.spec.priority_class_name, got.metadata.labels) == (9, "kept", {"rev": "2"})
