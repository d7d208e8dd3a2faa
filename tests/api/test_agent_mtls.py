"""The API server and the node agents authenticate each other (``clusterctl/api/node_proxy.py``,
``node_runtime/server.py``): the API server pins each agent's published serving certificate and
presents its CA-signed client certificate; agents accept nothing else; no token goes to an agent.

Real parts: a real control plane (subprocess), real agents (``node_runtime.harness.AgentHandle``),
real kubectl, and "agents" of our own (TLS servers on 127.0.0.1) that stand on a node's address.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import ssl
import uuid
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clusterctl.api import auth, node_proxy
from clusterctl.api.testing import FAST_TIMINGS, start_control_plane
from node_runtime import server as agent_server

pytestmark = pytest.mark.timeout(180)

#: generous: the machine may be at load 10 (every wait below ends as soon as its condition holds)
WAIT = 60.0


@pytest.fixture(scope="module")
def cp(tmp_path_factory):
    from node_runtime.harness import wait_serving
    plane = start_control_plane(tmp_path_factory.mktemp("cp"), timings=FAST_TIMINGS)
    wait_serving(plane)
    yield plane
    plane.stop()


# --- certificates and stand-in agents ---------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    cert = (x509.CertificateBuilder().subject_name(_name("another-ca")).issuer_name(_name("another-ca"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return _write(directory, "another-ca", cert, key)


def make_cert(directory: Path, ca_crt: Path | None, ca_key: Path | None, cn: str, *, usage=ExtendedKeyUsageOID.CLIENT_AUTH,
              name: str | None = None) -> tuple[Path, Path]:
    """A leaf certificate signed by the CA (``ca_crt``/``ca_key``), or self-signed when they are None."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    if ca_crt is not None:
        issuer = x509.load_pem_x509_certificate(ca_crt.read_bytes()).subject
        signer = serialization.load_pem_private_key(ca_key.read_bytes(), None)
    else:
        issuer, signer = _name(cn), key
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(signer, hashes.SHA256()))
    return _write(directory, name or uuid.uuid4().hex[:8], cert, key)


def _write(directory: Path, stem: str, cert: x509.Certificate, key) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    crt, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return crt, key_path


def sha256_of(crt: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(crt.read_text())).hexdigest()


class Eavesdropper:
    """A TLS server on a node's address that counts every TCP connection and records every byte
    sent to it after the handshake. It asks for no client certificate: whatever it gets is what it
    learns. (TLS is started by hand after the accept, so a connection counts even when its
    handshake does not finish.)"""

    def __init__(self, crt: Path, key: Path):
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(crt, key)
        self.connections = 0
        self.received = b""
        self.closed = 0
        self.server: asyncio.AbstractServer | None = None
        self.port = 0

    async def __aenter__(self) -> "Eavesdropper":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await writer.start_tls(self.tls)
            while data := await reader.read(65536):
                self.received += data
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.closed += 1
            writer.close()


class RecordingAgent:
    """An agent endpoint that behaves like a real one (CERT_REQUIRED against the cluster CA) and
    records what each request carried: its headers and the client certificate's CN."""

    def __init__(self, crt: Path, key: Path, ca_file: Path):
        self.tls = agent_server.endpoint_tls(crt, key, ca_file=str(ca_file), ca_data=None)
        self.requests: list[tuple[str, dict, str | None]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def __aenter__(self) -> "RecordingAgent":
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") or {}
        cn = next((v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"), None)
        self.requests.append((request.path, dict(request.headers), cn))
        return web.Response(text="from the pinned agent\n")


async def call(cp, method: str, path: str, body: dict | None = None, *, token: str | None = "admin"):
    return await asyncio.to_thread(cp.request, method, path, body, token=token, timeout=WAIT)


async def make_node(cp, name: str, port: int, pin: str | None) -> None:
    meta: dict = {"name": name}
    if pin is not None:
        meta["annotations"] = {node_proxy.SERVING_CERT_ANNOTATION: pin}
    r = await call(cp, "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": meta})
    assert r.status == 201, r.body
    status = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
              "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
    r = await asyncio.to_thread(cp.request, "PATCH", f"/api/v1/nodes/{name}/status", {"status": status},
                                content_type="application/merge-patch+json", timeout=WAIT)
    assert r.status == 200, r.body
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-pod", "namespace": "default"},
           "spec": {"nodeName": name, "containers": [{"name": "main", "image": "busybox"}]}}
    r = await call(cp, "POST", "/api/v1/namespaces/default/pods", pod)
    assert r.status == 201, r.body


async def wait_for(predicate, what: str, timeout: float = WAIT):
    """Poll ``predicate`` (plain or async) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.1)


# --- the API server pins each agent -----------------------------------------------------------

async def test_an_impostor_on_the_nodes_address_gets_a_handshake_and_not_one_byte(cp, tmp_path):
    node = f"pinned-{uuid.uuid4().hex[:6]}"
    real_crt, _ = make_cert(tmp_path, None, None, f"system:node:{node}", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    impostor = make_cert(tmp_path, None, None, f"system:node:{node}", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    async with Eavesdropper(*impostor) as fake:
        await make_node(cp, node, fake.port, sha256_of(real_crt))
        for path in (f"/api/v1/namespaces/default/pods/{node}-pod/log", f"/api/v1/nodes/{node}/proxy/stats/summary"):
            r = await call(cp, "GET", path)
            assert r.status == 502, (path, r.status, r.body)
            msg = json.loads(r.body)["message"]
            assert f'node "{node}"' in msg and sha256_of(real_crt) in msg and sha256_of(impostor[0]) in msg, msg
        # exec, as kubectl asks for it (a WebSocket upgrade)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cp.ssl_context())) as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await s.ws_connect(f"{cp.url}/api/v1/namespaces/default/pods/{node}-pod/exec",
                                   params=[("command", "cat"), ("command", "/etc/secret"), ("stdout", "true")],
                                   protocols=["v5.channel.k8s.io"], headers={"Authorization": f"Bearer {cp.token}"},
                                   timeout=aiohttp.ClientWSTimeout(ws_receive=WAIT, ws_close=WAIT))
        assert refused.value.status == 502
        # kubectl's fallback after a failed WebSocket exec (SPDY, no WebSocket upgrade) hears the same
        r = await call(cp, "GET", f"/api/v1/namespaces/default/pods/{node}-pod/exec?command=cat&stdout=true")
        assert r.status == 502 and f'node "{node}"' in json.loads(r.body)["message"], r.body
        await wait_for(lambda: fake.connections == 4 and fake.closed == 4, "the four connections to close")
    assert fake.received == b"", fake.received[:200]   # no request line, no header, no token


async def test_a_node_that_published_no_certificate_is_not_dialled(cp, tmp_path):
    node = f"unpinned-{uuid.uuid4().hex[:6]}"
    async with Eavesdropper(*make_cert(tmp_path, None, None, "x", usage=ExtendedKeyUsageOID.SERVER_AUTH)) as fake:
        await make_node(cp, node, fake.port, None)
        r = await call(cp, "GET", f"/api/v1/namespaces/default/pods/{node}-pod/log")
        assert r.status == 503 and node_proxy.SERVING_CERT_ANNOTATION in json.loads(r.body)["message"], r.body
        r = await call(cp, "GET", f"/api/v1/nodes/{node}/proxy/stats/summary")
        assert r.status == 503 and f'node "{node}"' in json.loads(r.body)["message"], r.body
        r = await call(cp, "GET", f"/api/v1/namespaces/default/pods/{node}-pod/exec?command=cat&stdout=true")
        assert r.status == 503 and f'node "{node}"' in json.loads(r.body)["message"], r.body
    assert fake.connections == 0


async def test_the_pinned_agent_sees_the_api_servers_client_certificate_and_no_token(cp, tmp_path):
    node = f"recorded-{uuid.uuid4().hex[:6]}"
    crt, key = make_cert(tmp_path, None, None, f"system:node:{node}", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    async with RecordingAgent(crt, key, cp.ca_file) as agent:
        await make_node(cp, node, agent.port, sha256_of(crt))
        r = await call(cp, "GET", f"/api/v1/namespaces/default/pods/{node}-pod/log?tailLines=5")
        assert r.status == 200 and r.body == b"from the pinned agent\n", (r.status, r.body)
        r = await call(cp, "GET", f"/api/v1/nodes/{node}/proxy/stats/summary")
        assert r.status == 200, r.body
        # exec without a WebSocket: the agent is checked (healthz), nothing is run, the caller learns why
        r = await call(cp, "GET", f"/api/v1/namespaces/default/pods/{node}-pod/exec?command=cat&stdout=true")
        assert r.status == 400 and "WebSocket only" in json.loads(r.body)["message"], r.body
    assert [p for p, _, _ in agent.requests] == [f"/containerLogs/default/{node}-pod/main", "/stats/summary", "/healthz"]
    for _, headers, cn in agent.requests:
        assert cn == auth.KUBELET_CLIENT_CN
        assert not any(h.lower() in ("authorization", "proxy-authorization") for h in headers), headers
        assert cp.token not in json.dumps(headers)


# --- the agent lets in only the API server ----------------------------------------------------

@pytest.fixture
async def real_agent(cp, tmp_path):
    from node_runtime.harness import AgentHandle
    handle = AgentHandle(cp, None, tmp_path / "agent", f"mtls-{uuid.uuid4().hex[:6]}")
    await handle.start()
    yield handle
    await handle.close()


async def _get(port: int, tls: ssl.SSLContext, headers: dict | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        async with s.get(f"https://127.0.0.1:{port}/stats/summary", headers=headers or {},
                         timeout=aiohttp.ClientTimeout(total=WAIT)) as r:
            return r.status, await r.text()


def client_tls(cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        tls.load_cert_chain(*cert)
    return tls


async def test_the_agent_refuses_every_caller_but_the_api_server(cp, real_agent, tmp_path):
    port = real_agent.agent.endpoint_port
    pki = cp.data_dir / "pki"
    ca = (pki / "ca.crt", pki / "ca.key")
    other_ca = make_ca(tmp_path / "other")
    refused_in_handshake = {
        "no client certificate, the admin token": (None, {"Authorization": f"Bearer {cp.token}"}),
        "the right name from another CA": (make_cert(tmp_path, *other_ca, auth.KUBELET_CLIENT_CN), {}),
        "the right name, self-signed": (make_cert(tmp_path, None, None, auth.KUBELET_CLIENT_CN), {}),
        "the cluster CA's, but only for servers": (make_cert(tmp_path, *ca, auth.KUBELET_CLIENT_CN,
                                                             usage=ExtendedKeyUsageOID.SERVER_AUTH), {}),
        "the API server's serving certificate": ((pki / "server.crt", pki / "server.key"), {}),
    }
    for what, (cert, headers) in refused_in_handshake.items():
        with pytest.raises((aiohttp.ClientConnectionError, ssl.SSLError)):
            status = await _get(port, client_tls(cert), headers)
            pytest.fail(f"{what}: the agent answered {status}")
    # a client certificate of the cluster CA with another name: in, but not allowed
    status, text = await _get(port, client_tls(make_cert(tmp_path, *ca, "system:node:some-node")))
    assert status == 403 and auth.KUBELET_CLIENT_CN in text and "CN=system:node:some-node" in text, text
    # the API server's own client certificate
    status, text = await _get(port, client_tls((pki / auth.KUBELET_CLIENT_CERT, pki / auth.KUBELET_CLIENT_KEY)))
    assert status == 200 and json.loads(text)["node"]["nodeName"] == real_agent.node_name


async def test_the_agent_publishes_its_certificate_and_republishes_a_new_one(cp, real_agent, tmp_path):
    name = real_agent.node_name
    admin = real_agent.client

    async def published() -> str:
        node = await admin.get("nodes", name)
        return (node["metadata"].get("annotations") or {}).get(agent_server.SERVING_CERT_ANNOTATION, "")

    async def on_the_wire() -> str:
        pki = cp.data_dir / "pki"
        tls = client_tls((pki / auth.KUBELET_CLIENT_CERT, pki / auth.KUBELET_CLIENT_KEY))
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", real_agent.agent.endpoint_port, ssl=tls), WAIT)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        return hashlib.sha256(der).hexdigest()

    first = await on_the_wire()
    assert await published() == first
    r = await call(cp, "GET", f"/api/v1/nodes/{name}/proxy/stats/summary")
    assert r.status == 200 and json.loads(r.body)["node"]["nodeName"] == name, r.body
    # a restart with a new certificate (its pki was lost): the Node carries the new one, and the
    # API server follows it
    await real_agent.stop()
    for f in (real_agent.data_dir / "pki").iterdir():
        f.unlink()
    await real_agent.start()
    second = await on_the_wire()
    assert second != first
    assert await published() == second      # registration itself republishes (start() waited for it)
    r = await call(cp, "GET", f"/api/v1/nodes/{name}/proxy/stats/summary")
    assert r.status == 200, r.body
    # and the status loop puts it back if someone removes it
    r = await asyncio.to_thread(cp.request, "PATCH", f"/api/v1/nodes/{name}",
                                {"metadata": {"annotations": {agent_server.SERVING_CERT_ANNOTATION: None}}},
                                content_type="application/merge-patch+json", timeout=WAIT)
    assert r.status == 200, r.body
    await wait_for(lambda: _equals(published(), second), "the certificate to be republished")


async def _equals(value, expected) -> bool:
    return (await value) == expected


async def test_a_node_token_cannot_publish_a_certificate_for_another_node(cp, real_agent):
    victim = f"victim-{uuid.uuid4().hex[:6]}"
    r = await call(cp, "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": victim}})
    assert r.status == 201, r.body
    token = real_agent.agent.client.credentials.bearer_token()
    patch = {"metadata": {"annotations": {agent_server.SERVING_CERT_ANNOTATION: "00" * 32}}}
    for path in (f"/api/v1/nodes/{victim}", f"/api/v1/nodes/{victim}/status"):
        r = await asyncio.to_thread(cp.request, "PATCH", path, patch, content_type="application/merge-patch+json",
                                    token=token, timeout=WAIT)
        assert r.status == 403, (path, r.status, r.body)
    node = json.loads((await call(cp, "GET", f"/api/v1/nodes/{victim}")).body)
    assert agent_server.SERVING_CERT_ANNOTATION not in (node["metadata"].get("annotations") or {})
    # its own Node: yes
    own = real_agent.node_name
    r = await asyncio.to_thread(cp.request, "PATCH", f"/api/v1/nodes/{own}", patch, content_type="application/merge-patch+json",
                                token=token, timeout=WAIT)
    assert r.status == 200, r.body


# --- the API server's client certificate ------------------------------------------------------

def test_the_client_certificate_is_issued_once_and_again_for_a_new_ca(tmp_path):
    pki = tmp_path / "pki"
    auth.init_pki(pki, addresses=["127.0.0.1"])
    crt = pki / auth.KUBELET_CLIENT_CERT
    cert = x509.load_pem_x509_certificate(crt.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == auth.KUBELET_CLIENT_CN
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()))
    assert (pki / auth.KUBELET_CLIENT_KEY).stat().st_mode & 0o077 == 0
    before = crt.read_bytes()
    auth.init_pki(pki, addresses=["127.0.0.1"])        # a rerun reissues the server certificate, not this one
    assert auth.ensure_kubelet_client_cert(pki) is False and crt.read_bytes() == before
    (pki / "ca.crt").unlink()
    auth.init_pki(pki, addresses=["127.0.0.1"])        # a new CA: the old client certificate is worthless
    assert crt.read_bytes() != before
    x509.load_pem_x509_certificate(crt.read_bytes()).verify_directly_issued_by(
        x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes()))


def test_a_control_plane_made_before_the_client_certificate_gets_one_when_it_starts(tmp_path):
    plane = start_control_plane(tmp_path / "old", timings=FAST_TIMINGS, start=False)
    pki = plane.data_dir / "pki"
    for f in (auth.KUBELET_CLIENT_CERT, auth.KUBELET_CLIENT_KEY):
        (pki / f).unlink()
    ca_before = (pki / "ca.crt").read_bytes()
    plane.start(timeout=WAIT)
    try:
        cert = x509.load_pem_x509_certificate((pki / auth.KUBELET_CLIENT_CERT).read_bytes())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca_before))
        assert (pki / "ca.crt").read_bytes() == ca_before
    finally:
        plane.stop()


def test_both_ends_agree_on_names():
    assert agent_server.API_SERVER_CLIENT_CN == auth.KUBELET_CLIENT_CN
    assert agent_server.SERVING_CERT_ANNOTATION == node_proxy.SERVING_CERT_ANNOTATION


async def test_a_node_token_creates_only_its_own_node(cp):
    """NodeRestriction: a compromised worker cannot register a peer's Node (its address, its pin)."""
    me = f"self-{uuid.uuid4().hex[:6]}"
    token = await asyncio.to_thread(cp.node_token, me)
    await wait_for(lambda: _token_works(cp, token), "the node token is known to the API server")
    r = await call(cp, "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"peer-of-{me}"}},
                   token=token)
    assert r.status == 403, r.body
    assert me in json.loads(r.body)["message"]
    r = await call(cp, "POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": me}}, token=token)
    assert r.status == 201, r.body


async def _token_works(cp, token: str) -> bool:
    return (await call(cp, "GET", "/api/v1/nodes", token=token)).status == 200


async def test_kubectl_exec_to_an_impostor_says_so(cp, tmp_path):
    """kubectl tries WebSocket, then falls back to a SPDY POST: both must end in our 502 naming the
    node, not a 405, and the impostor gets not one byte."""
    import subprocess

    node = f"pinned-{uuid.uuid4().hex[:6]}"
    real_crt, _ = make_cert(tmp_path, None, None, "x", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    async with Eavesdropper(*make_cert(tmp_path, None, None, "y", usage=ExtendedKeyUsageOID.SERVER_AUTH)) as fake:
        await make_node(cp, node, fake.port, sha256_of(real_crt))
        out = await asyncio.to_thread(subprocess.run, ["kubectl", "--kubeconfig", str(cp.kubeconfig), "exec", f"{node}-pod", "--", "true"],
                                      capture_output=True, text=True, timeout=120)
        assert out.returncode != 0 and node in out.stderr and "refusing" in out.stderr, out.stderr
    assert fake.received == b""
