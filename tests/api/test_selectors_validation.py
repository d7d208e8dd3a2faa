"""Pure tests: selector grammar and matching, per-kind defaulting and validation messages."""

from __future__ import annotations

import pytest

from clusterctl.api.errors import ApiError
from clusterctl.api.kinds import default_registry
from clusterctl.api.selectors import from_label_selector_object, parse_field_selector, parse_label_selector


@pytest.mark.parametrize("text,labels,expected", [
    ("a=b", {"a": "b"}, True), ("a==b", {"a": "c"}, False), ("a!=b", {}, True), ("a", {"a": ""}, True),
    ("!a", {"a": "x"}, False), ("a in (x, y)", {"a": "y"}, True), ("a notin (x)", {"a": "x"}, False),
    ("a=b,c", {"a": "b"}, False), ("", {"z": "1"}, True), ("x.io/k=v", {"x.io/k": "v"}, True),
])
def test_label_selector(text, labels, expected):
    assert parse_label_selector(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["a in (b", "a in b", "=x", "a=b,,", "a notin ()"])
def test_bad_label_selector_is_400(text):
    with pytest.raises(ApiError) as err:
        parse_label_selector(text)
    assert err.value.code == 400


def test_structured_selector():
    sel = from_label_selector_object({"matchLabels": {"app": "x"},
                                      "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]})
    assert sel.matches({"app": "x", "tier": "web"}) and not sel.matches({"app": "x", "tier": "db"})
    assert str(sel) == "app=x,tier notin (db)"


def test_field_selector_per_kind():
    fs = parse_field_selector("involvedObject.name=p,source=kubelet,type!=Warning", "Event")
    ev = {"involvedObject": {"name": "p"}, "source": {"component": "kubelet"}, "type": "Normal"}
    assert fs.matches(ev)
    with pytest.raises(ApiError):
        parse_field_selector("spec.nodeName=x", "Service")


def _validate(kind: str, obj: dict, old: dict | None = None) -> list[str]:
    info = next(k for k in default_registry() if k.kind == kind)
    if info.default:
        info.default(obj)
    return [e.message() for e in info.validate(obj, old)]


def test_pod_messages():
    errs = _validate("Pod", {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "x", "ports": [{"containerPort": 0}], "env": [{"name": "1BAD"}]},
        {"name": "a", "image": ""}], "restartPolicy": "Sometimes"}})
    assert "spec.containers[0].ports[0].containerPort: Invalid value: 0: must be between 1 and 65535, inclusive" in errs
    assert 'spec.containers[1].name: Duplicate value: "a"' in errs
    assert "spec.containers[1].image: Required value" in errs
    assert any(e.startswith('spec.restartPolicy: Unsupported value: "Sometimes"') for e in errs)
    assert any(e.startswith('spec.containers[0].env[0].name: Invalid value: "1BAD"') for e in errs)


def test_pod_update_may_only_change_images():
    old = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x"}]}}
    new = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "y"}]}}
    assert _validate("Pod", new, _validate("Pod", old) or old) == []
    changed = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "x", "command": ["sh"]}]}}
    assert any("pod updates may not change fields" in e for e in _validate("Pod", changed, old))


def test_deployment_selector_rules_and_defaults():
    d = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}},
         "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}
    errs = _validate("Deployment", d)
    assert errs == ['spec.template.metadata.labels: Invalid value: {"app":"b"}: `selector` does not match template `labels`']
    assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%"
    assert d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_service_job_cronjob_rules():
    assert "spec.ports: Required value" in _validate("Service", {"metadata": {"name": "s"}, "spec": {}})
    assert any("DNS-1035" in e for e in _validate("Service", {"metadata": {"name": "1svc"}, "spec": {"ports": [{"port": 80}]}}))
    job = {"metadata": {"name": "j", "uid": "u1"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    errs = _validate("Job", job)
    assert any(e.startswith('spec.template.spec.restartPolicy: Unsupported value: "Always"') for e in errs)
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}
    cj = {"metadata": {"name": "c"}, "spec": {"schedule": "not a schedule", "jobTemplate": {"spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}}
    assert any(e.startswith("spec.schedule: Invalid value") for e in _validate("CronJob", cj))
    cj["spec"]["schedule"] = "@hourly"
    assert _validate("CronJob", cj) == []
