"""Who may talk to the API server: the cluster CA, bearer tokens, and what each token may do.

PKI: ``init_pki`` makes a cluster CA (EC P-256) and a server certificate signed by it, with SANs
for 127.0.0.1, localhost, this host's addresses and configured names. The kubeconfig carries the
CA, so kubectl and the Python client verify the server. It also makes, once, the API server's
*client* certificate for node agents (``apiserver-kubelet-client.crt``, CN
``KUBELET_CLIENT_CN``, clientAuth only; Kubernetes' ``--kubelet-client-certificate``): agents
accept only that certificate (``node_runtime/server.py``), so the API server never sends a bearer
token to an agent. ``ensure_kubelet_client_cert`` issues it for a data directory made before it
existed (the API server calls it when it starts), and reissues it when the CA changed. Keys,
certificates and their atomic writes come from ``clusterctl.pki`` (shared with etcd's CA).

Tokens: ``tokens.yaml`` holds only SHA-256 hashes of tokens, each with a user name and groups.
``admin`` (group ``system:masters``) may do everything. ``system:node:<name>`` (group
``system:nodes``) may act only for its node, modelled on Kubernetes' Node authorizer:
its Node object (and status; it creates only its own: ``authorize_node_create``), its Lease in ``kube-node-lease``, pods bound to it (list/watch
only with ``fieldSelector=spec.nodeName=<name>``, status updates, final deletion), Events, and
read access to what a kubelet and service proxy need (services, endpoints, endpointslices,
configmaps, secrets, namespaces, nodes). Anything else is 403 with Kubernetes' message.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from clusterctl import pki
from clusterctl.api import errors

ADMIN_USER = "admin"
NODE_PREFIX = "system:node:"
#: the subject common name of the API server's client certificate for node agents: the only one they accept
KUBELET_CLIENT_CN = "clusterctl-apiserver-kubelet-client"
KUBELET_CLIENT_CERT, KUBELET_CLIENT_KEY = "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"


# --- PKI ---------------------------------------------------------------------------------------

def local_addresses() -> list[str]:
    out = {"127.0.0.1"}
    try:
        import psutil
        for addrs in psutil.net_if_addrs().values():
            for a in addrs:
                if a.family == socket.AF_INET:
                    out.add(a.address)
    except (ImportError, OSError):
        pass
    return sorted(out)


def init_pki(pki_dir: Path, *, names: list[str] = (), addresses: list[str] | None = None,
             valid_days: int = 3650) -> None:
    """Create the CA (if absent) and (re)issue the server certificate."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = pki_dir / "ca.crt", pki_dir / "ca.key"
    if not ca_cert_path.exists() or not ca_key_path.exists():
        ca_cert, ca_key = pki.self_signed_ca("clusterctl-ca", days=valid_days)
        pki.write_pair(ca_cert_path, ca_key_path, ca_cert, ca_key)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", socket.gethostname(),
             "127.0.0.1", *names, *(addresses if addresses is not None else local_addresses())]
    cert, key = pki.issue_certificate(ca_cert, ca_key, common_name="clusterctl-apiserver", usage="server",
                                      names=names, days=valid_days)
    pki.write_pair(pki_dir / "server.crt", pki_dir / "server.key", cert, key)
    ensure_kubelet_client_cert(pki_dir, valid_days=valid_days)


def ensure_kubelet_client_cert(pki_dir: Path, *, valid_days: int = 3650) -> bool:
    """Issue the API server's client certificate for node agents unless a valid one signed by
    this CA is there. Returns True when it issued one. Needs ``ca.key`` (``errors.internal`` naming
    the file otherwise). Written key first, certificate last, each atomically: a reader that sees
    the certificate sees its key."""
    crt_path, key_path = pki_dir / KUBELET_CLIENT_CERT, pki_dir / KUBELET_CLIENT_KEY
    try:
        ca_cert = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    except (OSError, ValueError) as exc:
        raise errors.internal(f"cannot read the cluster CA certificate {pki_dir / 'ca.crt'}: {exc}") from exc
    if _current_client_cert(crt_path, key_path, ca_cert):
        return False
    try:
        ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise errors.internal(f"cannot issue the API server's client certificate for node agents: "
                              f"the CA key {pki_dir / 'ca.key'} is unreadable ({exc})") from exc
    cert, key = pki.issue_certificate(ca_cert, ca_key, common_name=KUBELET_CLIENT_CN, usage="client",
                                      organization="system:masters", days=valid_days)
    pki.write_pair(crt_path, key_path, cert, key)
    return True


def _current_client_cert(crt_path: Path, key_path: Path, ca_cert: x509.Certificate) -> bool:
    """Is there a client certificate signed by ``ca_cert``, with its key, valid for another 30 days?"""
    if not key_path.exists():
        return False
    try:
        cert = x509.load_pem_x509_certificate(crt_path.read_bytes())
        cert.verify_directly_issued_by(ca_cert)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)


def server_ssl_context(pki_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki_dir / "server.crt", pki_dir / "server.key")
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


# --- tokens ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    @property
    def node_name(self) -> str | None:
        return self.name[len(NODE_PREFIX):] if self.name.startswith(NODE_PREFIX) else None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass
class TokenFile:
    path: Path
    entries: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> "TokenFile":
        if not path.exists():
            return cls(path, [])
        raw = yaml.safe_load(path.read_text()) or {}
        return cls(path, list(raw.get("tokens") or []))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = yaml.safe_dump({"tokens": self.entries}, sort_keys=False).encode()
        pki.write_private(self.path, data)

    def add(self, user: str, groups: list[str], token: str | None = None) -> str:
        """Add (or replace) the token of ``user``; returns the plaintext token (only time it is seen)."""
        token = token or new_token()
        self.entries = [e for e in self.entries if e.get("user") != user]
        self.entries.append({"user": user, "groups": list(groups), "sha256": hash_token(token)})
        return token

    def add_node(self, node: str, token: str | None = None) -> str:
        return self.add(NODE_PREFIX + node, ["system:nodes", "system:authenticated"], token)


class Authenticator:
    """Bearer token -> User, comparing SHA-256 hashes."""

    def __init__(self, tokens: TokenFile | None, *, anonymous_admin: bool = False):
        self._by_hash = {e["sha256"]: User(e["user"], tuple(e.get("groups") or ()))
                         for e in (tokens.entries if tokens else []) if e.get("sha256") and e.get("user")}
        self.anonymous_admin = anonymous_admin
        self.tokens = tokens

    def reload(self) -> None:
        if self.tokens is not None:
            self.tokens = TokenFile.load(self.tokens.path)
            self.__init__(self.tokens, anonymous_admin=self.anonymous_admin)

    def authenticate(self, authorization: str | None) -> User:
        if self.anonymous_admin:
            return User(ADMIN_USER, ("system:masters",))
        if not authorization or not authorization.lower().startswith("bearer "):
            raise errors.unauthorized()
        digest = hash_token(authorization[7:].strip())
        # One dict lookup, not a comparison per known token (a cluster of 1,000 nodes has 1,000
        # node tokens, and every request pays this). Keys are SHA-256 digests of the tokens: an
        # attacker cannot steer a guess's digest, so the lookup's timing tells nothing useful.
        user = self._by_hash.get(digest)
        if user is None:
            raise errors.unauthorized()
        return user


# --- authorization -----------------------------------------------------------------------------

NODE_READABLE = {"services", "endpoints", "endpointslices", "namespaces", "nodes",
                 "persistentvolumeclaims", "priorityclasses", "runtimeclasses"}
#: a node reads these one by one, and only those a pod bound to it refers to (``authorize_pod_reference``)
NODE_REFERENCED = {"secrets", "configmaps"}
READ_VERBS = {"get", "list", "watch"}


@dataclass(frozen=True)
class Request:
    verb: str                   # get list watch create update patch delete deletecollection
    resource: str               # plural
    group: str
    namespace: str | None
    name: str | None
    subresource: str | None
    field_selector: str = ""


def authorize(user: User, req: Request) -> None:
    """Raise 403 when ``user`` may not make ``req`` (object-level pod checks: ``authorize_pod``)."""
    if user.is_admin:
        return
    node = user.node_name
    if node is None:
        raise _deny(user, req)
    r, v = req.resource, req.verb
    if r == "nodes":
        # not nodes/proxy: the API server reaches agents with its own admin credential
        if (v in READ_VERBS and req.subresource in (None, "status")) or (v == "create" and req.subresource is None) \
                or (req.name == node and v in ("update", "patch")):
            return
    elif r == "leases" and req.group == "coordination.k8s.io":
        if req.namespace == "kube-node-lease" and (req.name == node or v == "create") and v in ("get", "create", "update", "patch", "watch"):
            return
    elif r == "pods":
        if v in ("list", "watch"):
            if _selects_node(req.field_selector, node):
                return
        elif v in ("get", "update", "patch", "delete") and req.name and req.subresource in (None, "status"):
            return  # checked against the object by authorize_pod
        elif v == "create" and req.subresource == "eviction":
            pass
    elif r == "events" and req.group in ("", "events.k8s.io"):
        if v in ("create", "update", "patch", "get", "list", "watch"):
            return
    elif r in NODE_READABLE and v in READ_VERBS:
        return
    elif r in NODE_REFERENCED and not req.group and v == "get" and req.name and req.subresource is None:
        return  # checked against the node's pods by authorize_pod_reference
    raise _deny(user, req)


def pod_references(pod: dict, resource: str, name: str) -> bool:
    """Does ``pod`` use the Secret/ConfigMap ``name`` (volumes, projected sources, env, envFrom, imagePullSecrets)?"""
    spec = pod.get("spec") or {}
    secret = resource == "secrets"
    for vol in spec.get("volumes") or []:
        if secret and (vol.get("secret") or {}).get("secretName") == name:
            return True
        if not secret and (vol.get("configMap") or {}).get("name") == name:
            return True
        for src in (vol.get("projected") or {}).get("sources") or []:
            if (src.get("secret" if secret else "configMap") or {}).get("name") == name:
                return True
    if secret and any((ref or {}).get("name") == name for ref in spec.get("imagePullSecrets") or []):
        return True
    key_ref, from_ref = ("secretKeyRef", "secretRef") if secret else ("configMapKeyRef", "configMapRef")
    for c in (spec.get("initContainers") or []) + (spec.get("containers") or []) + (spec.get("ephemeralContainers") or []):
        for env in c.get("env") or []:
            if ((env.get("valueFrom") or {}).get(key_ref) or {}).get("name") == name:
                return True
        for src in c.get("envFrom") or []:
            if (src.get(from_ref) or {}).get("name") == name:
                return True
    return False


def authorize_pod_reference(user: User, req: Request, pods_on_node: list[dict]) -> None:
    """Kubernetes' node authorizer: a node may read a Secret or ConfigMap only when a pod bound to it uses it."""
    if user.is_admin or user.node_name is None or req.resource not in NODE_REFERENCED:
        return
    if not any(pod_references(p, req.resource, req.name or "") for p in pods_on_node):
        raise _deny(user, req, f"no relationship found between node '{user.node_name}' and this object")


def authorize_node_create(user: User, req: Request, obj: dict) -> None:
    """Kubernetes' NodeRestriction: a node creates only its own Node. (``authorize`` lets node users
    create Nodes but cannot see the name, which is in the body.) Without this, a node could register
    a Node for a peer that has not registered yet — its address, its agent certificate's hash —
    and be handed that peer's pods, logs and exec sessions."""
    if user.is_admin or user.node_name is None or req.resource != "nodes" or req.group or req.verb != "create":
        return
    name = ((obj or {}).get("metadata") or {}).get("name")
    if name != user.node_name:
        raise _deny(user, Request(req.verb, req.resource, req.group, None, name, None),
                    why=f'node "{user.node_name}" may only create its own Node object')


def authorize_pod(user: User, req: Request, pod: dict) -> None:
    """Node users may touch a pod only when it is bound to their node."""
    if user.is_admin or user.node_name is None:
        return
    if (pod.get("spec") or {}).get("nodeName") != user.node_name:
        raise _deny(user, req, why=f'pod is not bound to node "{user.node_name}"')
    if req.verb in ("update", "patch") and req.subresource != "status":
        raise _deny(user, req, why="a node may only update the status of its pods")


def _selects_node(field_selector: str, node: str) -> bool:
    for term in (field_selector or "").split(","):
        term = term.replace("==", "=").strip()
        if term == f"spec.nodeName={node}":
            return True
    return False


def _deny(user: User, req: Request, why: str = "") -> errors.ApiError:
    resource = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    return errors.forbidden(user.name, req.verb, resource, req.group, req.namespace, req.name,
                            why=why or ("can only access its own node's objects" if user.node_name else ""))
