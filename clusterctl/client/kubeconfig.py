"""Load a standard kubeconfig into the few facts an API client needs.

Resolution order is kubectl's: an explicit ``--kubeconfig`` path, else the ``KUBECONFIG``
environment variable (a ``:``-separated list merged first-wins, as kubectl does), else
``~/.kube/config``. From the chosen context we take the cluster's server and CA (``certificate-
authority-data`` or ``certificate-authority`` file, or ``insecure-skip-tls-verify``) and the user's
credentials (``token``, ``tokenFile``, client certificate/key as data or files). Relative file
paths are resolved against the kubeconfig's own directory, as kubectl does.

Several API servers (an HA control plane without a load balancer in front): ``server`` stays the
one kubectl uses, and the cluster's ``extensions`` may list them all, in order of preference::

    clusters:
    - name: c
      cluster:
        server: https://10.0.0.11:6443
        extensions:
        - name: clusterctl.io/servers
          extension: {servers: [https://10.0.0.11:6443, https://10.0.0.12:6443, https://10.0.0.13:6443]}

kubectl ignores the extension; ``ApiClient`` fails over between the servers (``servers``).
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clusterctl.client.errors import KubeconfigError

DEFAULT_PATH = Path("~/.kube/config")
SERVERS_EXTENSION = "clusterctl.io/servers"


@dataclass
class ClusterCredentials:
    """Where the API server is and how to talk to it: the resolved current context."""

    server: str
    context: str = ""
    namespace: str = "default"
    ca_data: bytes | None = None
    ca_file: str | None = None
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    client_cert_data: bytes | None = None
    client_key_data: bytes | None = None
    client_cert_file: str | None = None
    client_key_file: str | None = None
    source: str = ""
    #: every API server of the cluster in order of preference (``server`` first); empty = ``[server]``
    servers: list[str] = field(default_factory=list)
    _tmp_files: list[str] = field(default_factory=list, repr=False)

    def all_servers(self) -> list[str]:
        """``server`` followed by the other ``servers``, each once, without trailing slashes."""
        out: list[str] = []
        for url in [self.server, *self.servers]:
            url = str(url).rstrip("/")
            if url and url not in out:
                out.append(url)
        return out

    def bearer_token(self) -> str | None:
        """The bearer token, read from ``tokenFile`` each time (it may be rotated)."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise KubeconfigError(f"cannot read token file {self.token_file} (from {self.source}): {exc}") from exc
        return None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """An SSL context verifying the cluster CA, or ``False`` for plain http / insecure."""
        if not self.server.startswith("https"):
            return False
        if self.insecure:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            try:
                if self.ca_data is not None:
                    ctx = ssl.create_default_context(cadata=self.ca_data.decode())
                elif self.ca_file is not None:
                    ctx = ssl.create_default_context(cafile=self.ca_file)
                else:
                    ctx = ssl.create_default_context()
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise KubeconfigError(f"bad certificate authority for cluster {self.server} (from {self.source}): {exc}") from exc
        cert, key = self._client_cert_paths()
        if cert:
            try:
                ctx.load_cert_chain(cert, key)
            except (ssl.SSLError, OSError) as exc:
                raise KubeconfigError(f"bad client certificate/key (from {self.source}): {exc}") from exc
        return ctx

    def _client_cert_paths(self) -> tuple[str | None, str | None]:
        # ssl only loads cert chains from files: spill inline data into private temp files.
        cert, key = self.client_cert_file, self.client_key_file
        if self.client_cert_data is not None:
            cert = self._spill(self.client_cert_data)
        if self.client_key_data is not None:
            key = self._spill(self.client_key_data)
        return cert, key

    def _spill(self, data: bytes) -> str:
        fd, name = tempfile.mkstemp(prefix="clusterctl-kc-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        self._tmp_files.append(name)
        return name


def kubeconfig_paths(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files to read, in kubectl's order of precedence."""
    if explicit:
        return [Path(explicit).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [DEFAULT_PATH.expanduser()]


def _read_merged(paths: list[Path], explicit: bool) -> tuple[dict[str, Any], dict[str, Path]]:
    """Merge kubeconfig files first-wins; remember which file each named entry came from."""
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": [], "current-context": ""}
    origin: dict[str, Path] = {}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    found = False
    for path in paths:
        try:
            text = path.read_text()
        except FileNotFoundError:
            if explicit:
                raise KubeconfigError(f"kubeconfig {path} does not exist") from None
            continue
        except OSError as exc:
            raise KubeconfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        found = True
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {path} is not a mapping")
        if not merged["current-context"] and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
        for section in ("clusters", "users", "contexts"):
            for entry in doc.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if not name or name in seen[section]:
                    continue
                seen[section].add(name)
                merged[section].append(entry)
                origin[f"{section}/{name}"] = path
    if not found:
        raise KubeconfigError(f"no kubeconfig found (looked at {', '.join(map(str, paths))}); pass --kubeconfig")
    return merged, origin


def _named(doc: dict[str, Any], section: str, name: str, key: str, source: str) -> dict[str, Any]:
    for entry in doc[section]:
        if entry.get("name") == name:
            return dict(entry.get(key) or {})
    raise KubeconfigError(f"{section[:-1]} {name!r} not found in {source}")


def _b64(value: str, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise KubeconfigError(f"{what} in {source} is not valid base64") from exc


def load_kubeconfig(path: str | os.PathLike[str] | None = None, *, context: str | None = None) -> ClusterCredentials:
    """Resolve the (current or given) context of a kubeconfig into ``ClusterCredentials``."""
    paths = kubeconfig_paths(path)
    doc, origin = _read_merged(paths, explicit=path is not None)
    source = ", ".join(map(str, paths))
    ctx_name = context or doc["current-context"]
    if not ctx_name:
        raise KubeconfigError(f"no current-context in {source}; pass --context")
    ctx = _named(doc, "contexts", ctx_name, "context", source)
    cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    if not cluster_name:
        raise KubeconfigError(f"context {ctx_name!r} in {source} names no cluster")
    cluster = _named(doc, "clusters", cluster_name, "cluster", source)
    user = _named(doc, "users", user_name, "user", source) if user_name else {}
    cluster_dir = origin.get(f"clusters/{cluster_name}", paths[0]).parent
    user_dir = origin.get(f"users/{user_name}", paths[0]).parent

    def rel(base: Path, value: str | None) -> str | None:
        return str((base / Path(value).expanduser())) if value else None

    server = cluster.get("server")
    if not server:
        raise KubeconfigError(f"cluster {cluster_name!r} in {source} has no server")
    creds = ClusterCredentials(
        server=str(server).rstrip("/"),
        context=ctx_name,
        namespace=ctx.get("namespace") or "default",
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        ca_file=rel(cluster_dir, cluster.get("certificate-authority")),
        token=user.get("token"),
        token_file=rel(user_dir, user.get("tokenFile")),
        client_cert_file=rel(user_dir, user.get("client-certificate")),
        client_key_file=rel(user_dir, user.get("client-key")),
        source=source,
    )
    creds.servers = _servers_extension(cluster, f"cluster {cluster_name!r} in {source}")
    if cluster.get("certificate-authority-data"):
        creds.ca_data = _b64(cluster["certificate-authority-data"], f"cluster {cluster_name!r} certificate-authority-data", source)
    if user.get("client-certificate-data"):
        creds.client_cert_data = _b64(user["client-certificate-data"], f"user {user_name!r} client-certificate-data", source)
    if user.get("client-key-data"):
        creds.client_key_data = _b64(user["client-key-data"], f"user {user_name!r} client-key-data", source)
    return creds


def _servers_extension(cluster: dict[str, Any], where: str) -> list[str]:
    """The ``clusterctl.io/servers`` extension's server list (empty when there is none)."""
    for ext in cluster.get("extensions") or []:
        if not isinstance(ext, dict) or ext.get("name") != SERVERS_EXTENSION:
            continue
        servers = (ext.get("extension") or {}).get("servers") if isinstance(ext.get("extension"), dict) else None
        if not isinstance(servers, list) or not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in servers):
            raise KubeconfigError(f"{where}: extension {SERVERS_EXTENSION} needs extension.servers, a list of http(s) URLs")
        return [u.rstrip("/") for u in servers]
    return []
