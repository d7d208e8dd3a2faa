"""etcd with TLS and client certificates, as bootstrap runs it (real Debian etcd on loopback).

etcd refuses a client without a certificate, one with a certificate from another CA, and plain
http; the store refuses an etcd it cannot verify. Certificates are made once and kept (a rerun
changes nothing), keys are 0600, a member's certificate is reissued only when it must change.
Plain http is refused for any etcd endpoint off loopback, in the store and in the control-plane
config. A 3-member cluster peers over TLS, and an API server on it keeps serving when a member
(its first endpoint) goes away.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from clusterctl.api.config import ConfigError, from_dict
from clusterctl.store import StoreError, open_store
from clusterctl.store.etcd_process import LocalEtcd, LocalEtcdCluster
from clusterctl.store.etcd_store import EtcdStore
from clusterctl.store.etcd_tls import ClientTLS, EtcdCA, EtcdTLSError, client_ssl_context

RANGE = b'{"key":"AA=="}'


@pytest.fixture(scope="module")
def tls_etcd(tmp_path_factory) -> LocalEtcd:
    with LocalEtcd(tmp_path_factory.mktemp("tls-etcd"), tls=True) as etcd:
        yield etcd


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> EtcdCA:
    """A second etcd CA: its certificates must open nothing on ``tls_etcd``."""
    return EtcdCA(tmp_path_factory.mktemp("other-ca"))


def _range(endpoint: str, context: ssl.SSLContext | None) -> int:
    request = urllib.request.Request(endpoint + "/v3/kv/range", data=RANGE, method="POST")
    with urllib.request.urlopen(request, timeout=30, context=context) as response:
        return response.status


def _refused(endpoint: str, context: ssl.SSLContext | None) -> str:
    """The error a request gets (the test fails if it is answered)."""
    try:
        status = _range(endpoint, context)
    except (urllib.error.URLError, ssl.SSLError, ConnectionError, OSError) as exc:
        return repr(exc)
    raise AssertionError(f"{endpoint} answered {status} to a client it should refuse")


def test_etcd_refuses_clients_without_a_certificate_of_its_ca(tls_etcd, other_ca):
    assert tls_etcd.endpoint.startswith("https://127.0.0.1:")
    good = tls_etcd.client_tls
    assert _range(tls_etcd.endpoint, good.ssl_context()) == 200

    # no client certificate: etcd ends the handshake (TLS 1.3 reports it on the first read)
    _refused(tls_etcd.endpoint, client_ssl_context(good.ca_file))
    # a client certificate from another CA
    stranger, _ = other_ca.issue_client("stranger", common_name="clusterctl-apiserver-etcd-client")
    _refused(tls_etcd.endpoint, client_ssl_context(good.ca_file, stranger.cert_file, stranger.key_file))
    # plain http on the TLS port
    _refused(tls_etcd.endpoint.replace("https://", "http://"), None)
    # and the client refuses an etcd whose certificate its CA did not sign
    other_ca.ensure()
    error = _refused(tls_etcd.endpoint, client_ssl_context(str(other_ca.ca_file), good.cert_file, good.key_file))
    assert "CERTIFICATE_VERIFY_FAILED" in error, error


def test_the_peer_port_admits_members_only(tls_etcd):
    """Peers must show a member certificate: the API server's client certificate (same CA) is refused."""
    peer = tls_etcd.peer_url
    member = tls_etcd.member_tls
    as_member = client_ssl_context(member.ca_file, member.cert_file, member.key_file)
    with urllib.request.urlopen(peer + "/members", timeout=30, context=as_member) as response:
        assert response.status == 200 and tls_etcd.name in response.read().decode()
    _refused_get(peer + "/members", tls_etcd.client_tls.ssl_context())
    _refused_get(peer + "/members", client_ssl_context(member.ca_file))


def _refused_get(url: str, context: ssl.SSLContext) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            raise AssertionError(f"{url} answered {response.status} to a certificate it should refuse")
    except (urllib.error.URLError, ssl.SSLError, ConnectionError, OSError):
        pass


async def test_the_store_speaks_mtls_and_fails_clearly_without_it(tls_etcd, other_ca):
    store = EtcdStore([tls_etcd.endpoint], prefix="/tls", **tls_etcd.store_options())
    await store.start()
    try:
        created = await store.create("/registry/core/secrets/default/s", {"data": {"k": "dg=="}})
        assert (await store.get("/registry/core/secrets/default/s")) == created
        events = store.watch("/registry/", after_revision=created.mod_revision - 1)
        assert (await asyncio.wait_for(events.__anext__(), 30)).key == "/registry/core/secrets/default/s"
        await events.aclose()
    finally:
        await store.close()

    stranger, _ = other_ca.issue_client("stranger", common_name="clusterctl-apiserver-etcd-client")
    for options in ({"ca_file": tls_etcd.client_tls.ca_file},                      # no certificate
                    {"ca_file": tls_etcd.client_tls.ca_file, "cert_file": stranger.cert_file,
                     "key_file": stranger.key_file}):                               # another CA's
        refused = EtcdStore([tls_etcd.endpoint], prefix="/tls", retry_budget=0.5, timeout=10, **options)
        with pytest.raises(StoreError, match=tls_etcd.endpoint.replace(".", r"\.")):
            await refused.start()
    # verifying etcd against the wrong CA fails in the handshake, and the error says what to check
    other_ca.ensure()
    unverified = EtcdStore([tls_etcd.endpoint], prefix="/tls", retry_budget=0.5, timeout=10,
                           ca_file=str(other_ca.ca_file), cert_file=tls_etcd.client_tls.cert_file,
                           key_file=tls_etcd.client_tls.key_file)
    with pytest.raises(StoreError, match="CERTIFICATE_VERIFY_FAILED.*TLS with etcd failed: ca_file must be the etcd CA"):
        await unverified.start()
    with pytest.raises(EtcdTLSError, match="no such file"):
        await EtcdStore([tls_etcd.endpoint], ca_file="/nonexistent/ca.crt").start()


def test_certificates_are_made_once_kept_and_reissued_only_when_they_must_change(tmp_path):
    ca = EtcdCA(tmp_path / "pki")
    assert ca.ensure() is True and ca.ensure() is False
    member, changed = ca.issue_member("member", name="h1", addresses=["10.200.7.2"])
    assert changed
    before = {p.name: p.read_bytes() for p in (tmp_path / "pki").iterdir()}
    again, changed = ca.issue_member("member", name="h1", addresses=["10.200.7.2"])
    assert not changed and again == member
    client, changed = ca.issue_client("apiserver-etcd-client", common_name="clusterctl-apiserver-etcd-client")
    assert changed and not ca.issue_client("apiserver-etcd-client", common_name="clusterctl-apiserver-etcd-client")[1]
    for name, data in before.items():
        assert (tmp_path / "pki" / name).read_bytes() == data, f"{name} changed on a rerun"

    for key in ("ca.key", "member.key", "apiserver-etcd-client.key"):
        assert stat.S_IMODE((tmp_path / "pki" / key).stat().st_mode) == 0o600, key
    cert = x509.load_pem_x509_certificate(Path(member.cert_file).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} == {"10.200.7.2", "127.0.0.1"}
    assert set(san.get_values_for_type(x509.DNSName)) == {"h1", "localhost"}
    usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert usages == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    client_cert = x509.load_pem_x509_certificate(Path(client.cert_file).read_bytes())
    assert list(client_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]

    # a loosened key is tightened, not reissued; a new address reissues the member certificate
    (tmp_path / "pki" / "member.key").chmod(0o644)
    assert not ca.issue_member("member", name="h1", addresses=["10.200.7.2"])[1]
    assert stat.S_IMODE((tmp_path / "pki" / "member.key").stat().st_mode) == 0o600
    assert ca.issue_member("member", name="h1", addresses=["10.200.7.2", "10.200.8.2"])[1]
    # an inventory address that is a DNS name is a DNS name in the certificate
    named, _ = ca.issue_member("named", name="cp1", addresses=["cp1.example.internal"])
    san = x509.load_pem_x509_certificate(Path(named.cert_file).read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"cp1", "cp1.example.internal", "localhost"}
    # a certificate another CA signed is replaced
    other = EtcdCA(tmp_path / "other")
    other.issue_client("apiserver-etcd-client", common_name="x")
    for suffix in (".crt", ".key"):
        (tmp_path / "pki" / f"apiserver-etcd-client{suffix}").write_bytes(
            (tmp_path / "other" / f"apiserver-etcd-client{suffix}").read_bytes())
    assert ca.issue_client("apiserver-etcd-client", common_name="clusterctl-apiserver-etcd-client")[1]

    # a certificate close to its end is made again by the next run (the clock is injectable)
    later = EtcdCA(tmp_path / "pki", clock=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1700))
    assert later.issue_member("member", name="h1", addresses=["10.200.7.2", "10.200.8.2"])[1]
    assert not later.issue_member("member", name="h1", addresses=["10.200.7.2", "10.200.8.2"])[1]

    # half a CA is an error naming the directory, never silently a new CA
    (tmp_path / "pki" / "ca.key").unlink()
    with pytest.raises(EtcdTLSError, match="only one of ca.crt and ca.key"):
        ca.ensure()


def test_the_bootstrap_command_prints_changed_only_when_it_made_something(tmp_path):
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clusterctl.store.etcd_tls", str(tmp_path / "pki"), *args],
                              capture_output=True, text=True, timeout=60)

    first = [run("ca"), run("member", "--name", "h1", "--address", "10.200.7.2"), run("client")]
    assert [r.returncode for r in first] == [0, 0, 0], [r.stderr for r in first]
    assert [r.stdout.split()[0] for r in first] == ["CHANGED"] * 3
    again = [run("ca"), run("member", "--name", "h1", "--address", "10.200.7.2"), run("client")]
    assert [(r.returncode, r.stdout) for r in again] == [(0, "")] * 3
    assert "-----BEGIN" not in "".join(r.stdout + r.stderr for r in first + again)  # keys are never printed


async def test_plain_http_is_refused_off_loopback(tmp_path):
    for endpoint in ("http://10.200.7.2:2379", "http://etcd.example:2379"):
        with pytest.raises(EtcdTLSError, match=endpoint.replace(".", r"\.") + ".*https://"):
            EtcdStore([endpoint])
        with pytest.raises(ConfigError, match=r"store\.endpoints: .*" + endpoint.replace(".", r"\.") +
                           r".*ca_file, cert_file, key_file"):
            from_dict({"data_dir": str(tmp_path), "store": {"backend": "etcd", "endpoints": [endpoint]}})
    for endpoint in ("http://127.0.0.1:2379", "http://localhost:2379", "http://[::1]:2379", "https://10.200.7.2:2379"):
        EtcdStore([endpoint])
        from_dict({"data_dir": str(tmp_path), "store": {"backend": "etcd", "endpoints": [endpoint]}})
    with pytest.raises(ConfigError, match="cert_file and store.key_file go together"):
        from_dict({"data_dir": str(tmp_path), "store": {"backend": "etcd", "endpoints": ["https://10.200.7.2:2379"],
                                                        "ca_file": "ca.crt", "cert_file": "c.crt"}})
    config = from_dict({"data_dir": str(tmp_path), "store": {
        "backend": "etcd", "endpoints": ["https://10.200.7.2:2379"], "ca_file": "etcd/ca.crt",
        "cert_file": "/abs/client.crt", "key_file": "etcd/client.key"}})
    assert config.store_config["ca_file"] == str(tmp_path.resolve() / "etcd/ca.crt")
    assert config.store_config["cert_file"] == "/abs/client.crt"
    assert config.store_config["key_file"] == str(tmp_path.resolve() / "etcd/client.key")
    assert open_store(config.store_config).endpoints == ["https://10.200.7.2:2379"]
    assert ClientTLS("ca", "c", "k").store_options() == {"ca_file": "ca", "cert_file": "c", "key_file": "k"}


def _member_list(cluster: LocalEtcdCluster) -> list[dict]:
    request = urllib.request.Request(cluster.endpoints[1] + "/v3/cluster/member/list", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=30, context=cluster.members[1].client_ssl_context()) as response:
        return json.loads(response.read())["members"]


def _api_server_state(cp) -> str:
    """What a refused connection to ``cp`` could mean: is the process alive, does anything listen
    on its port, is the listener its own socket; and its log's end (CI saw one refusal, once)."""
    lines = [f"process {cp.process.pid if cp.process else None}: returncode {cp.process.poll() if cp.process else None}"]
    listeners = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == cp.port and fields[3] == "0A":  # LISTEN
                listeners.add(fields[9])
    own = set()
    if cp.process is not None:
        try:
            for fd in Path(f"/proc/{cp.process.pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    own.add(target[8:-1])
        except OSError as exc:
            lines.append(f"fds unreadable: {exc}")
    lines.append(f"listening sockets on port {cp.port}: {sorted(listeners)}; of them the server's own: {sorted(listeners & own)}")
    return "\n".join(lines) + "\n--- control-plane.log ---\n" + cp.log_tail(60)


def test_an_api_server_on_a_tls_cluster_serves_and_survives_losing_a_member(tmp_path):
    import urllib3
    from kubernetes import client

    from clusterctl.api.testing import FAST_TIMINGS, api_client, start_control_plane

    with LocalEtcdCluster(tmp_path / "etcd", size=3, heartbeat_ms=50, election_ms=500, tls=True) as cluster:
        members = _member_list(cluster)
        assert len(members) == 3
        assert all(url.startswith("https://127.0.0.1:") for m in members for url in m["peerURLs"] + m["clientURLs"])

        cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS, store=cluster.store_config())
        api = None
        try:
            api = api_client(cp)
            core = client.CoreV1Api(api)
            core.create_namespaced_config_map("default", {"metadata": {"name": "before"}, "data": {"v": "1"}})
            cluster.members[0].stop()  # the API server's first endpoint
            deadline = time.monotonic() + 60
            while True:  # until the others (maybe after an election) take the write
                try:
                    core.create_namespaced_config_map("default", {"metadata": {"name": "after"}})
                    break
                except client.ApiException as exc:
                    assert exc.status in (409, 500, 503, 504) and time.monotonic() < deadline, exc
                    if exc.status == 409:  # an earlier attempt went through after all
                        break
                    time.sleep(0.5)
                except urllib3.exceptions.HTTPError as exc:  # no answer at all: the API server must keep serving
                    raise AssertionError(f"API server unreachable after losing an etcd member: {exc!r}\n"
                                         f"{_api_server_state(cp)}") from exc
            names = {c.metadata.name for c in core.list_namespaced_config_map("default").items}
            assert {"before", "after"} <= names
            assert core.read_namespaced_config_map("before", "default").data == {"v": "1"}
        finally:
            if api is not None:
                api.close()
            cp.stop()
