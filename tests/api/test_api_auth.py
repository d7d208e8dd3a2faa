"""Access: HTTPS with the cluster CA, bearer tokens stored hashed, 401 without a token, and a node
token that may act only for its own node (Node, Lease, pods bound to it, events, reads)."""

from __future__ import annotations

import socket
import ssl

import pytest

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": []}}


@pytest.fixture(scope="module")
def node_token(control_plane):
    for name in ("n1", "n2"):
        control_plane.request("POST", "/api/v1/nodes", {**NODE, "metadata": {"name": name}})
    for name in ("for-n1", "for-n2", "env-n1", "unused"):
        control_plane.request("POST", "/api/v1/namespaces/default/secrets", {"metadata": {"name": name}, "stringData": {"k": "v"}})
    control_plane.request("POST", "/api/v1/namespaces/default/configmaps", {"metadata": {"name": "cm-n1"}, "data": {"k": "v"}})
    control_plane.request("POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "on-n1"}, "spec": {
        "nodeName": "n1", "volumes": [{"name": "s", "secret": {"secretName": "for-n1"}},
                                      {"name": "p", "projected": {"sources": [{"configMap": {"name": "cm-n1"}}]}}],
        "containers": [{"name": "c", "image": "x", "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "env-n1", "key": "k"}}}]}]}})
    control_plane.request("POST", "/api/v1/namespaces/default/pods", {"metadata": {"name": "on-n2"}, "spec": {
        "nodeName": "n2", "volumes": [{"name": "s", "secret": {"secretName": "for-n2"}}], "containers": [{"name": "c", "image": "x"}]}})
    return control_plane.node_token("n1")


def test_server_certificate_is_signed_by_the_cluster_ca(control_plane):
    ctx = ssl.create_default_context(cafile=str(control_plane.ca_file))
    for host in ("127.0.0.1", "localhost"):
        with socket.create_connection(("127.0.0.1", control_plane.port), timeout=5) as sock:
            with ctx.wrap_socket(sock, server_hostname=host) as tls:
                assert tls.version() and tls.getpeercert()
    assert "certificate-authority-data" in control_plane.kubeconfig.read_text()


def test_tokens_are_stored_hashed(control_plane):
    tokens = (control_plane.data_dir / "tokens.yaml").read_text()
    assert control_plane.token not in tokens and "sha256" in tokens


def test_node_token_scope(control_plane, node_token):
    def call(method, path, body=None, ctype="application/json"):
        return control_plane.request(method, path, body, token=node_token, content_type=ctype)

    merge = "application/merge-patch+json"
    assert call("GET", "/api/v1/nodes/n1").status == 200
    assert call("PATCH", "/api/v1/nodes/n1/status", {"status": {"phase": "Running"}}, merge).status == 200
    denied = call("PATCH", "/api/v1/nodes/n2", {"metadata": {"labels": {"x": "y"}}}, merge)
    assert denied.status == 403
    assert denied.json()["message"].startswith('nodes "n2" is forbidden: User "system:node:n1" cannot patch resource "nodes"')
    assert call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1").status == 200
    assert call("GET", "/api/v1/pods").status == 403
    assert call("GET", "/api/v1/namespaces/default/pods/on-n1").status == 200
    assert call("GET", "/api/v1/namespaces/default/pods/on-n2").status == 403
    assert call("PATCH", "/api/v1/namespaces/default/pods/on-n1/status",
                {"status": {"phase": "Running"}}, merge).status == 200
    assert call("PATCH", "/api/v1/namespaces/default/pods/on-n2/status",
                {"status": {"phase": "Running"}}, merge).status == 403
    assert call("PATCH", "/api/v1/namespaces/default/pods/on-n1", {"metadata": {"labels": {"a": "b"}}}, merge).status == 403
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "n1"},
             "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}
    assert call("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", lease).status == 201
    assert call("PATCH", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1",
                {"spec": {"renewTime": "2026-01-01T00:00:00.000000Z"}}, merge).status == 200
    assert call("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2").status == 403
    event = {"metadata": {"name": "ev-n1"}, "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "Starting"}
    assert call("POST", "/api/v1/namespaces/default/events", event).status == 201
    assert call("GET", "/api/v1/services").status == 200
    # Kubernetes' node authorizer: only the Secrets/ConfigMaps of its own pods, one by one
    assert call("GET", "/api/v1/namespaces/default/secrets").status == 403
    assert call("GET", "/api/v1/namespaces/default/secrets?watch=1").status == 403
    assert call("GET", "/api/v1/namespaces/default/secrets/for-n1").status == 200
    assert call("GET", "/api/v1/namespaces/default/secrets/env-n1").status == 200
    assert call("GET", "/api/v1/namespaces/default/configmaps/cm-n1").status == 200
    denied = call("GET", "/api/v1/namespaces/default/secrets/for-n2")
    assert denied.status == 403 and "no relationship found between node 'n1'" in denied.json()["message"]
    assert call("GET", "/api/v1/namespaces/default/secrets/unused").status == 403
    assert call("PUT", "/api/v1/namespaces/default/secrets/for-n1", {"metadata": {"name": "for-n1"}}).status == 403
    assert call("POST", "/apis/apps/v1/namespaces/default/deployments", {"metadata": {"name": "x"}}).status == 403
    assert call("DELETE", "/api/v1/nodes/n2").status == 403
    # the node proxy reaches agents with the API server's own credential: not for node tokens
    assert call("GET", "/api/v1/nodes/n2/proxy/stats/summary").status == 403
    assert call("GET", "/api/v1/nodes/n1/proxy/containerLogs/default/on-n2/c").status == 403
