"""clusterctl.pki: the one home of keys, CAs, leaf certificates, atomic key files and address checks.

Certificates are checked field by field and then used for real: a mutual-TLS handshake on
loopback with Python's ``ssl`` (OpenSSL) between a server and a client certificate of one CA.
The modules that used to carry their own copies now use these (same objects, not copies), and
the node agent can ask the address questions without loading ``cryptography`` (~8 MB of RSS).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clusterctl import pki

NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("text, ip", [("10.0.0.1", True), ("::1", True), ("fd00::5", True),
                                      ("localhost", False), ("h1.example", False), ("10.0.0.256", False),
                                      ("", False)])
def test_is_ip(text, ip):
    assert pki.is_ip(text) is ip


@pytest.mark.parametrize("host, loopback", [("localhost", True), ("127.0.0.1", True), ("127.9.9.9", True),
                                            ("::1", True), ("10.200.1.2", False), ("0.0.0.0", False),
                                            ("registry.example", False), ("", False), (None, False),
                                            ("localhost.example", False)])
def test_is_loopback_host(host, loopback):
    assert pki.is_loopback_host(host) is loopback


def test_split_names_separates_ips_from_dns_names_without_repeats():
    ips, dns = pki.split_names(["h1", "10.0.0.2", "::1", "10.0.0.10", "h1", "10.0.0.2", "localhost"])
    assert ips == ["10.0.0.2", "10.0.0.10", "::1"]      # numeric order, not text order
    assert dns == ["h1", "localhost"]


def test_self_signed_ca_signs_certificates_and_nothing_else():
    cert, key = pki.self_signed_ca("test-ca", days=30, path_length=0, now=NOW)
    assert cert.public_key() == key.public_key()
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test-ca"
    cert.verify_directly_issued_by(cert)
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign and not usage.key_encipherment
    assert cert.not_valid_before_utc == NOW - pki.CLOCK_SLACK
    assert cert.not_valid_after_utc == NOW - pki.CLOCK_SLACK + dt.timedelta(days=30)
    unlimited, _ = pki.self_signed_ca("test-ca", days=30)
    assert unlimited.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length is None


@pytest.mark.parametrize("usage, expected", [
    ("server", {ExtendedKeyUsageOID.SERVER_AUTH}),
    ("client", {ExtendedKeyUsageOID.CLIENT_AUTH}),
    ("both", {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}),
])
def test_leaf_certificate_usage_names_and_subject(usage, expected):
    ca_cert, ca_key = pki.self_signed_ca("test-ca", days=3650, now=NOW)
    cert, key = pki.issue_certificate(ca_cert, ca_key, common_name="leaf", usage=usage, organization="ops",
                                      names=["10.0.0.1", "leaf.example", "::1", "leaf.example"], days=90, now=NOW)
    cert.verify_directly_issued_by(ca_cert)
    assert cert.public_key() == key.public_key() != ca_key.public_key()
    assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == expected
    assert pki.extended_key_usages(usage) == expected
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address("::1")]
    assert san.get_values_for_type(x509.DNSName) == ["leaf.example"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "leaf"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "ops"
    assert cert.not_valid_after_utc == NOW - pki.CLOCK_SLACK + dt.timedelta(days=90)


def test_leaf_without_names_has_no_san_and_never_outlives_its_ca():
    ca_cert, ca_key = pki.self_signed_ca("short-ca", days=10, now=NOW)
    cert, _ = pki.issue_certificate(ca_cert, ca_key, common_name="client", usage="client", days=365,
                                    now=NOW + dt.timedelta(days=1))
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert cert.not_valid_after_utc == ca_cert.not_valid_after_utc


async def test_certificates_of_one_ca_complete_a_mutual_tls_handshake(tmp_path: Path):
    """What the product does with them: a server certificate for 127.0.0.1 and a client
    certificate, both from one CA, verified both ways by OpenSSL."""
    ca_cert, ca_key = pki.self_signed_ca("test-ca", days=30)
    pki.write_public(tmp_path / "ca.crt", pki.pem_certificate(ca_cert))
    for stem, usage, names in [("server", "server", ["127.0.0.1", "localhost"]), ("client", "client", [])]:
        cert, key = pki.issue_certificate(ca_cert, ca_key, common_name=stem, usage=usage, names=names, days=30)
        pki.write_pair(tmp_path / f"{stem}.crt", tmp_path / f"{stem}.key", cert, key)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.crt")
    server_tls.verify_mode = ssl.CERT_REQUIRED
    server_tls.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    client_tls = ssl.create_default_context(cafile=tmp_path / "ca.crt")
    client_tls.load_cert_chain(tmp_path / "client.crt", tmp_path / "client.key")
    peers: list[str] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        peers.append(dict(field[0] for field in peer["subject"])["commonName"])
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    async with server:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_tls), timeout=30)
        writer.write(b"hello\n")
        assert await asyncio.wait_for(reader.readline(), timeout=30) == b"hello\n"
        writer.close()
    assert peers == ["client"]


def test_private_and_public_files_get_their_mode_even_over_a_loosened_file(tmp_path: Path):
    key_path, cert_path = tmp_path / "new-dir" / "x.key", tmp_path / "new-dir" / "x.crt"
    key_path.parent.mkdir(mode=0o700)
    key_path.write_bytes(b"old key")
    key_path.chmod(0o666)
    pki.write_private(key_path, b"new key")
    pki.write_public(cert_path, b"cert")
    assert key_path.read_bytes() == b"new key" and stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert cert_path.read_bytes() == b"cert" and stat.S_IMODE(cert_path.stat().st_mode) == 0o644
    assert sorted(p.name for p in key_path.parent.iterdir()) == ["x.crt", "x.key"]   # no temporary left


def test_a_missing_directory_is_made_private(tmp_path: Path):
    pki.write_private(tmp_path / "pki" / "ca.key", b"k")
    assert stat.S_IMODE((tmp_path / "pki").stat().st_mode) == 0o700


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path):
    path = tmp_path / "ca.key"
    pki.write_private(path, b"old")
    with pytest.raises(TypeError):
        pki.write_private(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ca.key"]


def test_write_pair_writes_pem_a_reader_can_load(tmp_path: Path):
    from cryptography.hazmat.primitives import serialization

    cert, key = pki.self_signed_ca("test-ca", days=1)
    pki.write_pair(tmp_path / "ca.crt", tmp_path / "ca.key", cert, key)
    assert x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes()) == cert
    loaded = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    assert loaded.public_key() == key.public_key()
    assert stat.S_IMODE((tmp_path / "ca.key").stat().st_mode) == 0o600


def test_former_copies_are_now_these_helpers():
    from clusterctl.api import auth
    from clusterctl.store import etcd_tls
    from node_runtime.images import registry

    assert etcd_tls.is_loopback_host is pki.is_loopback_host
    for module in (auth, etcd_tls):
        for copy in ("_is_ip", "_pem_key", "_write_private", "_write_public", "_write_atomically", "_key", "_replace"):
            assert not hasattr(module, copy), f"{module.__name__}.{copy} is a copy of a clusterctl.pki helper"
    policy = registry.RegistryPolicy()
    assert [policy.base_url(r) for r in ("localhost:5000", "127.0.0.1:5000", "[::1]:5000", "10.200.1.1:5000")] == [
        "http://localhost:5000", "http://127.0.0.1:5000", "http://[::1]:5000", "https://10.200.1.1:5000"]


def test_the_node_agent_asks_addresses_without_loading_cryptography():
    probe = ("import sys, node_runtime.images.registry, clusterctl.pki;"
             "assert clusterctl.pki.is_loopback_host('127.0.0.1');"
             "print(sorted(m for m in sys.modules if m.startswith('cryptography')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
