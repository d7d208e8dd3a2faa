"""Kubeconfig resolution: contexts, CA data/file, token/tokenFile, KUBECONFIG merging, errors."""

from __future__ import annotations

import base64
import datetime
import ssl
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clusterctl.client.errors import KubeconfigError
from clusterctl.client.kubeconfig import load_kubeconfig


def make_ca() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def write(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc))
    return path


def config(server: str = "https://127.0.0.1:6443", **user: object) -> dict:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "admin@c1",
        "clusters": [{"name": "c1", "cluster": {"server": server, "certificate-authority-data": base64.b64encode(make_ca()).decode()}},
                     {"name": "c2", "cluster": {"server": "https://127.0.0.2:6443", "insecure-skip-tls-verify": True}}],
        "users": [{"name": "admin", "user": user or {"token": "s3cret"}}, {"name": "node", "user": {"tokenFile": "node.token"}}],
        "contexts": [{"name": "admin@c1", "context": {"cluster": "c1", "user": "admin", "namespace": "apps"}},
                     {"name": "node@c2", "context": {"cluster": "c2", "user": "node"}}],
    }


def test_current_context_gives_server_ca_token_and_namespace(tmp_path: Path) -> None:
    creds = load_kubeconfig(write(tmp_path / "kc", config()))
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.namespace == "apps"
    assert creds.bearer_token() == "s3cret"
    ctx = creds.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED
    assert any(c["subject"] == ((("commonName", "test-ca"),),) for c in ctx.get_ca_certs())


def test_named_context_token_file_relative_to_kubeconfig_and_insecure(tmp_path: Path) -> None:
    (tmp_path / "node.token").write_text("node-token\n")
    creds = load_kubeconfig(write(tmp_path / "kc", config()), context="node@c2")
    assert creds.bearer_token() == "node-token"
    assert creds.namespace == "default"
    ctx = creds.ssl_context()
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_NONE


def test_kubeconfig_env_is_merged_first_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = write(tmp_path / "a", {"current-context": "x", "contexts": [{"name": "x", "context": {"cluster": "c1", "user": "admin"}}]})
    second = write(tmp_path / "b", config())
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    creds = load_kubeconfig()
    assert creds.context == "x" and creds.server == "https://127.0.0.1:6443"


def test_ca_file_resolved_relative(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_bytes(make_ca())
    doc = config()
    doc["clusters"][0]["cluster"] = {"server": "https://127.0.0.1:1", "certificate-authority": "ca.crt"}
    creds = load_kubeconfig(write(tmp_path / "kc", doc))
    assert creds.ca_file == str(tmp_path / "ca.crt")
    assert isinstance(creds.ssl_context(), ssl.SSLContext)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update({"current-context": "nope"}), "context 'nope' not found"),
        (lambda d: d["clusters"][0]["cluster"].pop("server"), "has no server"),
        (lambda d: d["clusters"][0]["cluster"].update({"certificate-authority-data": "!!"}), "not valid base64"),
    ],
)
def test_broken_kubeconfigs_say_what_is_wrong(tmp_path: Path, mutate, message: str) -> None:
    doc = config()
    mutate(doc)
    with pytest.raises(KubeconfigError, match=message):
        load_kubeconfig(write(tmp_path / "kc", doc))


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match="does not exist"):
        load_kubeconfig(tmp_path / "nope")


def test_servers_extension_lists_every_api_server_server_first(tmp_path: Path) -> None:
    doc = config()
    doc["clusters"][0]["cluster"]["extensions"] = [
        {"name": "other", "extension": {"x": 1}},
        {"name": "clusterctl.io/servers", "extension": {"servers": ["https://127.0.0.2:6443/", "https://127.0.0.1:6443"]}}]
    creds = load_kubeconfig(write(tmp_path / "kc", doc))
    assert creds.server == "https://127.0.0.1:6443"
    assert creds.all_servers() == ["https://127.0.0.1:6443", "https://127.0.0.2:6443"]
    assert load_kubeconfig(write(tmp_path / "plain", config())).all_servers() == ["https://127.0.0.1:6443"]


def test_a_malformed_servers_extension_is_named(tmp_path: Path) -> None:
    doc = config()
    doc["clusters"][0]["cluster"]["extensions"] = [{"name": "clusterctl.io/servers", "extension": {"servers": "127.0.0.2"}}]
    with pytest.raises(KubeconfigError, match=r"cluster 'c1' in .*clusterctl.io/servers needs extension.servers"):
        load_kubeconfig(write(tmp_path / "kc", doc))
