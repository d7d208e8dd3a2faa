"""Bad input of every kind gets a 4xx Kubernetes Status, and the server keeps serving after each."""

from __future__ import annotations

import json

import pytest

PODS = "/api/v1/namespaces/default/pods"
DEPLOYS = "/apis/apps/v1/namespaces/default/deployments"
GOOD_POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "good"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def _deploy(**spec_extra) -> dict:
    spec = {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": spec}


def _raw(obj) -> bytes:
    return json.dumps(obj).encode()


CASES = [
    # (id, method, path, body bytes, content type, expected code, text expected in the message)
    ("malformed-json", "POST", PODS, b'{"apiVersion": "v1", "kind": ', "application/json", 400, "json parse error"),
    ("malformed-yaml", "POST", PODS, b"apiVersion: v1\nkind: [Pod\n", "application/yaml", 400, "YAML"),
    ("array-body", "POST", PODS, b"[1, 2]", "application/json", 400, "cannot unmarshal array"),
    ("empty-body", "POST", PODS, b"", "application/json", 400, "empty"),
    ("binary-garbage", "POST", PODS, bytes(range(256)), "application/json", 400, ""),
    ("nan", "POST", PODS, b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"n"},"x":NaN}', "application/json", 400, ""),
    ("deep-nesting", "POST", PODS, b"[" * 100000 + b"]" * 100000, "application/json", 400, ""),
    ("wrong-type-replicas", "POST", DEPLOYS, _raw(_deploy(replicas="three")), "application/json", 400,
     "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    ("int-overflow", "POST", DEPLOYS, _raw(_deploy(replicas=10**30)), "application/json", 400, "cannot unmarshal number"),
    ("metadata-string", "POST", PODS, _raw({**GOOD_POD, "metadata": "x"}), "application/json", 400, "cannot unmarshal string"),
    ("label-not-string", "POST", PODS, _raw({**GOOD_POD, "metadata": {"name": "l", "labels": {"a": 1}}}),
     "application/json", 400, "cannot unmarshal number"),
    ("invalid-name", "POST", PODS, _raw({**GOOD_POD, "metadata": {"name": "Bad_Name"}}), "application/json", 422,
     "RFC 1123 subdomain"),
    ("negative-replicas", "POST", DEPLOYS, _raw(_deploy(replicas=-2)), "application/json", 422,
     "spec.replicas: Invalid value: -2: must be greater than or equal to 0"),
    ("no-containers", "POST", PODS, _raw({**GOOD_POD, "spec": {"containers": []}}), "application/json", 422,
     "spec.containers: Required value"),
    ("duplicate-container", "POST", PODS, _raw({**GOOD_POD, "spec": {"containers": [{"name": "c", "image": "a"},
                                                                                     {"name": "c", "image": "b"}]}}),
     "application/json", 422, 'spec.containers[1].name: Duplicate value: "c"'),
    ("bad-port", "POST", PODS, _raw({**GOOD_POD, "spec": {"containers": [{"name": "c", "image": "a",
                                                                          "ports": [{"containerPort": 70000}]}]}}),
     "application/json", 422, "must be between 1 and 65535"),
    ("bad-quantity", "POST", PODS, _raw({**GOOD_POD, "spec": {"containers": [{"name": "c", "image": "a", "resources": {
        "limits": {"cpu": "lots"}}}]}}), "application/json", 400, "quantities must match"),
    ("unknown-field-strict", "POST", DEPLOYS + "?fieldValidation=Strict", _raw(_deploy(foo=1)), "application/json", 400,
     'strict decoding error: unknown field "spec.foo"'),
    ("duplicate-field-strict", "POST", PODS + "?fieldValidation=Strict",
     b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","name":"b"},"spec":{"containers":[{"name":"c","image":"x"}]}}',
     "application/json", 400, 'duplicate field "metadata.name"'),
    ("bad-field-validation", "POST", PODS + "?fieldValidation=Loud", _raw(GOOD_POD), "application/json", 400,
     "fieldValidation"),
    ("wrong-kind", "POST", PODS, _raw({**GOOD_POD, "kind": "Service"}), "application/json", 400, "does not match"),
    ("wrong-namespace", "POST", PODS, _raw({**GOOD_POD, "metadata": {"name": "x", "namespace": "other"}}),
     "application/json", 400, "does not match the namespace"),
    ("missing-namespace", "POST", "/api/v1/namespaces/nowhere/pods", _raw(GOOD_POD), "application/json", 404,
     'namespaces "nowhere" not found'),
    ("text-plain", "POST", PODS, _raw(GOOD_POD), "text/plain", 415, "unknown format"),
    ("huge-body", "POST", "/api/v1/namespaces/default/configmaps",
     _raw({"metadata": {"name": "big"}, "data": {"a": "x" * (1600 * 1024)}}), "application/json", 413, "too large"),
    ("post-to-item", "POST", PODS + "/x", _raw(GOOD_POD), "application/json", 405, ""),
    ("put-to-collection", "PUT", PODS, _raw(GOOD_POD), "application/json", 405, ""),
    ("unknown-resource", "GET", "/api/v1/namespaces/default/widgets", None, "", 404, ""),
    ("unknown-group", "GET", "/apis/example.com/v1/things", None, "", 404, ""),
    ("too-deep-path", "GET", PODS + "/a/status/extra", None, "", 404, ""),
    ("bad-label-selector", "GET", PODS + "?labelSelector=a%20in%20(b", None, "", 400, "unable to parse requirement"),
    ("bad-field-selector", "GET", PODS + "?fieldSelector=spec.x%3Dy", None, "", 400, "field label not supported"),
    ("bad-limit", "GET", PODS + "?limit=abc", None, "", 400, "limit"),
    ("bad-continue", "GET", PODS + "?limit=1&continue=%%%", None, "", 400, "continue"),
    ("bad-watch-rv", "GET", PODS + "?watch=1&resourceVersion=abc", None, "", 400, "resource version"),
    ("bad-dry-run", "POST", PODS + "?dryRun=Some", _raw(GOOD_POD), "application/json", 400, "dry run"),
    ("bad-include-object", "GET", PODS, None, "", 400, "includeObject"),
    ("bad-protobuf", "POST", PODS, b"k8s\x00\xff\xff\xff", "application/vnd.kubernetes.protobuf", 400, "protobuf"),
    ("protobuf-wrong-wire-type", "POST", "/api/v1/namespaces", b"k8s\x00\x0a\x02\x08\x01\x12",
     "application/vnd.kubernetes.protobuf", 400, "protobuf"),
    ("protobuf-unsupported-kind", "POST", PODS,
     b"k8s\x00\x0a\x09\x0a\x02v1\x12\x03Pod\x12\x00", "application/vnd.kubernetes.protobuf", 415, "protobuf only for"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_4xx_status(control_plane, case):
    name, method, path, body, ctype, code, text = case
    headers = {}
    if name == "bad-include-object":
        path += "?includeObject=Everything"
        headers["Accept"] = "application/json;as=Table;v=v1;g=meta.k8s.io"
    r = control_plane.request(method, path, body, content_type=ctype or "application/json", headers=headers)
    assert r.status == code, r.body[:500]
    status = r.json()
    assert status["kind"] == "Status" and status["status"] == "Failure" and status["code"] == code
    assert text in status["message"], status["message"]
    assert control_plane.request("GET", "/api/v1/namespaces/default/pods").status == 200


def test_invalid_lists_causes(control_plane):
    bad = _deploy(replicas=-1)
    bad["metadata"]["name"] = "UPPER"
    bad["spec"]["template"]["metadata"]["labels"] = {"a": "c"}
    r = control_plane.request("POST", DEPLOYS, bad)
    assert r.status == 422
    causes = r.json()["details"]["causes"]
    assert {c["field"] for c in causes} == {"metadata.name", "spec.replicas", "spec.template.metadata.labels"}
    assert all(c["reason"] == "FieldValueInvalid" for c in causes)
    assert r.json()["message"].startswith('Deployment.apps "UPPER" is invalid: [')


def test_unknown_field_warn_drops_it_with_a_warning(control_plane):
    obj = {**_deploy(foo=1), "metadata": {"name": "warned"}}
    r = control_plane.request("POST", DEPLOYS + "?fieldValidation=Warn", obj)
    assert r.status == 201
    assert 'unknown field \\"spec.foo\\"' in r.headers.get("Warning", "") or 'unknown field "spec.foo"' in r.headers.get("Warning", "")
    assert "foo" not in r.json()["spec"]
    r = control_plane.request("POST", DEPLOYS + "?fieldValidation=Ignore", {**_deploy(bar=1), "metadata": {"name": "ign"}})
    assert r.status == 201 and "Warning" not in r.headers and "bar" not in r.json()["spec"]


BROKEN_PATCHES = [
    ("json-patch-not-a-list", b'{"op":"add"}', "application/json-patch+json", 400),
    ("json-patch-bad-op", b'[{"op":"explode","path":"/x"}]', "application/json-patch+json", 422),
    ("json-patch-test-fails", b'[{"op":"test","path":"/metadata/name","value":"other"}]', "application/json-patch+json", 422),
    ("json-patch-bad-path", b'[{"op":"remove","path":"/spec/nothing/here"}]', "application/json-patch+json", 422),
    ("merge-patch-malformed", b'{"metadata": {', "application/merge-patch+json", 400),
    ("merge-patch-array", b"[]", "application/merge-patch+json", 400),
    ("strategic-bad-directive", b'{"spec":{"containers":[{"$patch":"explode","name":"c"}]}}',
     "application/strategic-merge-patch+json", 422),
    ("patch-wrong-type", b'{"spec":{"containers":"none"}}', "application/merge-patch+json", 422),
    ("patch-invalid-result", b'{"spec":{"containers":[{"name":"c","image":""}]}}', "application/merge-patch+json", 422),
    ("patch-plain-json", b'{"metadata":{}}', "application/json", 415),
    ("server-side-apply", b"apiVersion: v1", "application/apply-patch+yaml", 415),
    ("patch-missing-object", b"{}", "application/merge-patch+json", 404),
]


@pytest.mark.parametrize("case", BROKEN_PATCHES, ids=[c[0] for c in BROKEN_PATCHES])
def test_broken_patches(control_plane, case):
    name, body, ctype, code = case
    if control_plane.request("GET", f"{PODS}/patched").status == 404:
        assert control_plane.request("POST", PODS, {**GOOD_POD, "metadata": {"name": "patched"}}).status == 201
    target = f"{PODS}/missing" if name == "patch-missing-object" else f"{PODS}/patched"
    r = control_plane.request("PATCH", target, body, content_type=ctype)
    assert r.status == code, r.body[:400]
    assert r.json()["kind"] == "Status"
    assert control_plane.request("GET", f"{PODS}/patched").json()["spec"]["containers"][0]["image"] == "busybox"


def test_unauthenticated_and_bad_token_are_401(control_plane):
    for token in (None, "not-a-token"):
        r = control_plane.request("GET", PODS, token=token)
        assert r.status == 401 and r.json()["reason"] == "Unauthorized"
