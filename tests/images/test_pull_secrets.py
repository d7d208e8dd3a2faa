"""Image pull Secrets and per-pull credentials against a real private registry (htpasswd auth).

Decoding of both Secret types and Docker's key normalisation; then pulls through the real image
store from Debian's ``docker-registry`` with ``auth: htpasswd``: the pod's credentials work for that
pull only, the node's stay the fallback, refused and missing credentials fail with messages that
name the registry and never the password, and the shared cache does not hand an image pulled with
credentials to a pull that presents none (or wrong ones).
"""

from __future__ import annotations

import base64
import json

import pytest

from node_runtime.errors import ImageNotPresent
from node_runtime.images.build import ImageSpec, build_image, push_image
from node_runtime.images.pull_secrets import (Credential, credentials_for, decode_secret, pod_credentials,
                                              registry_host, registry_key)
from node_runtime.images.registry import CredentialsRefused, CredentialsRequired, RegistryClient, RegistryPolicy
from node_runtime.images.registry_process import start_registry
from node_runtime.images.store import ImageStore
from tests.node_runtime.rootfs import make_busybox_rootfs

USER, PASSWORD = "deployer", "pw-7f3a9c1e-not-in-logs"
NODE_USER, NODE_PASSWORD = "node-puller", "pw-node-5d2e"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dockerconfigjson(name: str, auths: dict, namespace: str = "default") -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": _b64(json.dumps({"auths": auths}))}}


@pytest.mark.parametrize("key,normalised,host", [
    ("https://index.docker.io/v1/", "docker.io", "docker.io"),
    ("index.docker.io", "docker.io", "docker.io"),
    ("registry-1.docker.io", "docker.io", "docker.io"),
    ("docker.io", "docker.io", "docker.io"),
    ("https://Reg.Example.com:5000/v2/", "reg.example.com:5000", "reg.example.com:5000"),
    ("http://127.0.0.1:5055", "127.0.0.1:5055", "127.0.0.1:5055"),
    ("https://reg:5000/v2/team/", "reg:5000/team", "reg:5000"),
    ("quay.io/some/path/", "quay.io/some/path", "quay.io"),
    ("*.Example.com", "*.example.com", "*.example.com"),
    ("docker.io/myorg", "docker.io/myorg", "docker.io"),
])
def test_keys_are_normalised_as_docker_does_keeping_the_path(key, normalised, host):
    """Scheme, API version (/v1/, /v2/) and trailing slashes dropped, Hub's names one, the path kept."""
    assert registry_key(key) == normalised
    assert registry_host(key) == host


def test_credentials_for_an_image_the_most_specific_matching_key():
    def cred(name):
        return Credential(name, "pw-" + name)

    creds = {registry_key(k): cred(n) for k, n in [
        ("reg:5000", "reg-all"), ("reg:5000/team", "team"), ("reg:5000/team/app", "team-app"),
        ("*.example.com", "glob"), ("cdn.example.com", "cdn"), ("docker.io/myorg", "hub-org"),
        ("*.*.internal", "two-level")]}

    def user(image):
        got = credentials_for(creds, image)
        assert len(got) <= 1
        return next((c.username for c in got.values()), None), next(iter(got), None)

    assert user("reg:5000/team/app:v1") == ("team-app", "reg:5000")     # the longest path wins
    assert user("reg:5000/team/web:v1") == ("team", "reg:5000")
    assert user("reg:5000/teamx/web:v1") == ("reg-all", "reg:5000")     # whole segments, not a string prefix
    assert user("reg:5000/other:v1") == ("reg-all", "reg:5000")
    assert user("reg/team/app:v1") == (None, None)                       # the port is part of the host
    assert user("a.example.com/x:1") == ("glob", "a.example.com")
    assert user("cdn.example.com/x:1") == ("cdn", "cdn.example.com")    # a literal host before a glob
    assert user("example.com/x:1") == (None, None)                       # a glob part needs its own part
    assert user("a.b.example.com/x:1") == (None, None)
    assert user("a.b.internal/x:1") == ("two-level", "a.b.internal")
    assert user("myorg/tool:1") == ("hub-org", "docker.io")              # Docker Hub short names
    assert user("nginx:1") == (None, None)                               # docker.io/library/nginx
    # between equally specific keys, the first listed (the first Secret) wins
    twice = {"reg:5000": cred("first")}
    twice.setdefault("reg:5000", cred("second"))
    assert credentials_for(twice, "reg:5000/a:1")["reg:5000"].username == "first"


def test_decode_dockerconfigjson_auth_and_username_password():
    secret = dockerconfigjson("regcred", {
        "https://reg.example.com:5000/v1/": {"auth": _b64(f"{USER}:{PASSWORD}")},
        "index.docker.io": {"username": "hub", "password": "hubpw"},
    })
    creds = decode_secret(secret)
    assert creds["reg.example.com:5000"].pair() == (USER, PASSWORD)
    assert creds["docker.io"].pair() == ("hub", "hubpw")
    assert "regcred" in creds["docker.io"].source
    assert PASSWORD not in repr(creds) and "hubpw" not in repr(creds)


def test_decode_legacy_dockercfg():
    secret = {"metadata": {"name": "old"}, "type": "kubernetes.io/dockercfg",
              "data": {".dockercfg": _b64(json.dumps({"reg:5000": {"auth": _b64("a:b:c"), "email": "x@y"}}))}}
    assert decode_secret(secret)["reg:5000"].pair() == ("a", "b:c")   # the password may hold ':'


async def test_problems_name_the_secret_and_never_its_content():
    secrets = {
        "wrongtype": {"metadata": {"name": "wrongtype"}, "type": "Opaque", "data": {"password": _b64(PASSWORD)}},
        "badjson": {"metadata": {"name": "badjson"}, "type": "kubernetes.io/dockerconfigjson",
                    "data": {".dockerconfigjson": _b64('{"auths": {"r": ' + PASSWORD)}},
        "badauth": dockerconfigjson("badauth", {"r:1": {"auth": _b64(PASSWORD)}}),   # no ':' inside
        "good": dockerconfigjson("good", {"r:1": {"auth": _b64(f"{USER}:{PASSWORD}")}}),
        "second": dockerconfigjson("second", {"r:1": {"auth": _b64("other:pw")}}),
    }

    async def read(namespace, name):
        assert namespace == "team"
        return secrets.get(name)

    pod = {"metadata": {"namespace": "team"}, "spec": {"imagePullSecrets": [
        {"name": n} for n in ("missing", "wrongtype", "badjson", "badauth", "good", "second")]}}
    creds, problems = await pod_credentials(pod, read)
    assert creds["r:1"].pair() == (USER, PASSWORD)        # the first Secret listed wins
    assert [p.secret for p in problems] == ["missing", "wrongtype", "badjson", "badauth"]
    assert "not found" in problems[0].message and "Opaque" in problems[1].message
    for p in problems:
        assert p.secret in p.message
        assert PASSWORD not in p.message and _b64(PASSWORD) not in p.message


# -- against a real private registry ---------------------------------------------------------------

@pytest.fixture(scope="module")
def private_registry(tmp_path_factory):
    reg = start_registry(tmp_path_factory.mktemp("private-registry"), users={USER: PASSWORD, NODE_USER: NODE_PASSWORD},
                         timeout=60)
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def private_image(private_registry, tmp_path_factory):
    """``<registry>/team/app:v1``, pushed with the right credentials."""
    import asyncio
    root = make_busybox_rootfs(tmp_path_factory.mktemp("app"), {"www/index.html": "private\n"})
    built = build_image(root, ImageSpec(cmd=["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]))
    name = f"{private_registry.address}/team/app:v1"

    async def push():
        policy = RegistryPolicy(credentials={private_registry.address: (USER, PASSWORD)})
        async with RegistryClient(policy) as client:
            await push_image(built, name, client)

    asyncio.run(push())
    return name


def pod_creds(registry, password=PASSWORD):
    return {registry.address: Credential(USER, password, "image pull secret 'default/regcred'")}


async def test_pull_with_pod_credentials_then_cache_guards_other_pulls(tmp_path, private_registry, private_image):
    async with RegistryClient(RegistryPolicy()) as client:
        store = ImageStore(tmp_path / "images", client)
        # anonymous: the registry asks, nobody has credentials for it
        with pytest.raises(CredentialsRequired, match=f"registry {private_registry.address} requires credentials"):
            await store.ensure(private_image)
        # the pod's credentials, for this pull only
        image = await store.ensure(private_image, credentials=pod_creds(private_registry))
        assert (store.layer_dirs(image)[0] / "www/index.html").read_text() == "private\n"
        assert client.credential_for(private_registry.address) is None   # nothing leaked into the node's policy
        # tokens are kept per credential: none is filed under "anonymous" for another pull to use
        assert client._tokens and all(who for (_registry, _scope, who) in client._tokens)
        key_file = tmp_path / "images" / "credential-key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        assert PASSWORD.encode() not in b"".join(p.read_bytes() for p in (tmp_path / "images" / "images").iterdir())

        # cached, but a pull without credentials may not have it (IfNotPresent asks the registry)
        with pytest.raises(CredentialsRequired):
            await store.ensure(private_image)
        with pytest.raises(ImageNotPresent, match="credentials"):
            await store.ensure(private_image, "Never")
        with pytest.raises(CredentialsRefused) as refused:
            await store.ensure(private_image, credentials=pod_creds(private_registry, "wrong-password"))
        assert "refused the credentials" in str(refused.value) and "regcred" in str(refused.value)
        assert "wrong-password" not in str(refused.value) and USER not in str(refused.value)
    # the same credentials again: from the cache, the registry is not asked (a client that may not
    # contact it at all, over the same store, still gets the image)
    async with RegistryClient(RegistryPolicy(allowed=frozenset({"nowhere.invalid:1"}))) as offline:
        store = ImageStore(tmp_path / "images", offline)
        again = await store.ensure(private_image, credentials=pod_creds(private_registry))
        assert again.manifest_digest == image.manifest_digest
        assert (await store.ensure(private_image, "Never", credentials=pod_creds(private_registry))) == again


async def test_cached_image_for_other_valid_credentials_after_a_head(tmp_path, private_registry, private_image):
    """Another credential the registry accepts (here: the node's) gets the cached image after one HEAD."""
    async with RegistryClient(RegistryPolicy()) as pod_client:
        store = ImageStore(tmp_path / "images", pod_client)
        first = await store.ensure(private_image, credentials=pod_creds(private_registry))
    record = next((tmp_path / "images" / "images").iterdir())
    assert len(json.loads(record.read_text())["authorized"]) == 1
    node_policy = RegistryPolicy(credentials={private_registry.address: (NODE_USER, NODE_PASSWORD)})
    async with RegistryClient(node_policy) as node_client:
        store = ImageStore(tmp_path / "images", node_client)
        assert (await store.ensure(private_image)).manifest_digest == first.manifest_digest
    # the registry accepted the node's credential for it: remembered, no HEAD next time
    assert len(json.loads(record.read_text())["authorized"]) == 2
    async with RegistryClient(RegistryPolicy(allowed=frozenset({"nowhere.invalid:1"}),
                                             credentials={private_registry.address: (NODE_USER, NODE_PASSWORD)})) as offline:
        assert (await ImageStore(tmp_path / "images", offline).ensure(private_image)).manifest_digest == first.manifest_digest


async def test_pod_credentials_win_over_the_nodes(tmp_path, private_registry, private_image):
    wrong_node = RegistryPolicy(credentials={private_registry.address: (USER, "node-has-a-stale-password")})
    async with RegistryClient(wrong_node) as client:
        store = ImageStore(tmp_path / "images", client)
        with pytest.raises(CredentialsRefused, match="the node's registry credentials"):
            await store.ensure(private_image)
        image = await store.ensure(private_image, "Always", credentials=pod_creds(private_registry))
        assert image.layers
    right_node = RegistryPolicy(credentials={private_registry.address: (USER, PASSWORD)})
    async with RegistryClient(right_node) as client:
        store = ImageStore(tmp_path / "images2", client)
        # the node's stay the fallback for pods without a Secret for this registry
        image = await store.ensure(private_image, credentials={"other.example:5000": Credential("x", "y")})
        assert image.layers


# -- Bearer: a registry behind a token server (distribution's ``auth: token``) ---------------------

class TokenServer:
    """A minimal Docker token server on loopback: Basic credentials in, an ES256 JWT out.

    Right credentials → a token granting the asked scope; none → a token granting nothing (as
    Docker Hub answers anonymous requests); wrong ones → 401. The registry trusts the signing
    certificate (``rootcertbundle``) and finds it in the token's ``x5c`` header."""

    SERVICE, ISSUER = "clusterctl-test-registry", "clusterctl-test-tokens"

    def __init__(self, directory, users: dict[str, str]):
        import datetime
        import http.server
        import threading

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[str] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clusterctl test token signer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = directory / "token-signer.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, body = server.answer(self.path, self.headers.get("Authorization"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def registry_auth(self) -> str:
        return (f"auth:\n  token:\n    realm: {self.realm}\n    service: {self.SERVICE}\n"
                f"    issuer: {self.ISSUER}\n    rootcertbundle: {self.bundle}\n")

    def answer(self, path: str, authorization: str | None) -> tuple[int, bytes]:
        import time
        import urllib.parse
        import uuid as _uuid

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
        subject, access = "", []
        if authorization:
            user, _, password = base64.b64decode(authorization.split(" ", 1)[1]).decode().partition(":")
            if self.users.get(user) != password:
                self.requests.append("refused")
                return 401, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
            subject = user
            for scope in query.get("scope", []):
                kind, name, actions = scope.split(":")
                access.append({"type": kind, "name": name, "actions": actions.split(",")})
        self.requests.append(subject or "anonymous")
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": subject, "aud": self.SERVICE, "exp": now + 600, "nbf": now - 60,
                  "iat": now, "jti": _uuid.uuid4().hex, "access": access}
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}

        def b64url(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        token = f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
        return 200, json.dumps({"token": token, "access_token": token, "expires_in": 600}).encode()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory):
    directory = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(directory, {USER: PASSWORD})
    reg = start_registry(directory / "registry", auth=tokens.registry_auth(), timeout=60)
    yield reg, tokens
    reg.stop()
    tokens.stop()


async def test_bearer_token_registry_with_pod_credentials(tmp_path, token_registry):
    registry, tokens = token_registry
    root = make_busybox_rootfs(tmp_path / "rootfs", {"www/index.html": "behind tokens\n"})
    name = f"{registry.address}/team/tokened:v1"
    async with RegistryClient(RegistryPolicy(credentials={registry.address: (USER, PASSWORD)})) as pusher:
        await push_image(build_image(root, ImageSpec()), name, pusher)

    async with RegistryClient(RegistryPolicy()) as client:
        store = ImageStore(tmp_path / "images", client)
        with pytest.raises(CredentialsRequired, match=f"registry {registry.address} requires credentials"):
            await store.ensure(name)
        with pytest.raises(CredentialsRefused, match="refused the credentials from image pull secret"):
            await store.ensure(name, credentials=pod_creds(registry, "wrong-password"))
        assert tokens.requests[-1] == "refused"
        image = await store.ensure(name, credentials=pod_creds(registry))
        assert (store.layer_dirs(image)[0] / "www/index.html").read_text() == "behind tokens\n"
        assert tokens.requests[-1] == USER
        # the token is kept for pulls presenting the same credentials, and only for them
        assert client._tokens and all(who for (_registry, _scope, who) in client._tokens)
        asked = len(tokens.requests)
        await store.ensure(name, "Always", credentials=pod_creds(registry))
        assert len(tokens.requests) == asked, "a second pull with the same credentials asked for a new token"
        # cached: a pull without credentials gets an anonymous token that grants nothing → refused
        with pytest.raises(CredentialsRequired):
            await store.ensure(name)
