"""A client for OCI distribution registries (the `/v2/` API), with the node's pull policy.

What it guarantees:
- **Allow-list first.** With an allow-list set (agent config or ``CLUSTERCTL_REGISTRIES``), an image
  on any other registry fails with ``RegistryNotAllowed`` before a name is resolved or a socket opened.
- **Transport.** HTTPS by default; plain HTTP only for registries marked insecure and, as Docker
  does, for registries on loopback.
- **Auth.** Anonymous first; on ``401`` follows ``WWW-Authenticate``: ``Bearer`` (token endpoint,
  with basic credentials when configured) or ``Basic``. Tokens are cached per (registry, scope).
  Credentials come from the node's configuration (``RegistryPolicy.credentials``) or, for one pull,
  from a pod's image pull Secrets: ``with_credentials`` gives a client that shares the HTTP session
  but has those credentials first (the node's stay the fallback) and its own token cache, so a
  token obtained with a pod's credentials serves that pull only. Credentials a registry refuses
  (``401`` after presenting them) fail as ``CredentialsRefused`` naming the registry and where the
  credentials came from; a registry that wants credentials nobody gave fails as
  ``CredentialsRequired``. No message ever holds a password or an ``Authorization`` value.
- **Integrity.** Every blob and every manifest fetched by digest is hashed while streaming and
  rejected on mismatch; nothing unverified reaches the content store.
- **Media types.** OCI image index/manifest and Docker v2 manifest list/schema 2; an index is
  resolved to ``linux/<arch>`` of this machine.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

from clusterctl.pki import is_loopback_host
from node_runtime.errors import ImagePullError, RegistryNotAllowed
from node_runtime.images.pull_secrets import Credential
from node_runtime.images.reference import ImageReference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])
_INDEX_TYPES = {OCI_INDEX, DOCKER_LIST}

ENV_ALLOWLIST = "CLUSTERCTL_REGISTRIES"


class CredentialsRequired(ImagePullError):
    """The registry asks for credentials and neither the pod nor the node has any for it."""


class CredentialsRefused(ImagePullError):
    """The registry answered 401 to the credentials presented (wrong username or password)."""


NODE_CREDENTIALS = "the node's registry credentials"


def machine_arch() -> str:
    m = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(m, m)


def _is_loopback(registry: str) -> bool:
    """Is the registry (``host[:port]`` or ``[v6][:port]``) on this host's loopback?"""
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry[1:].split("]")[0]
    return is_loopback_host(host)


@dataclass
class RegistryPolicy:
    """Which registries may be contacted, which speak plain HTTP, and credentials per registry."""

    allowed: frozenset[str] | None = None          # None = any registry
    insecure: frozenset[str] = frozenset()
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def from_config(cls, allowed=None, insecure=(), credentials=None, *, environ=None) -> "RegistryPolicy":
        environ = os.environ if environ is None else environ
        env_value = environ.get(ENV_ALLOWLIST, "").strip()
        allow = set(allowed) if allowed else set()
        if env_value:
            allow |= {x.strip() for x in env_value.split(",") if x.strip()}
        return cls(allowed=frozenset(allow) if allow else None, insecure=frozenset(insecure or ()),
                   credentials=dict(credentials or {}))

    def check(self, ref: ImageReference) -> None:
        if self.allowed is not None and ref.registry not in self.allowed:
            source = ENV_ALLOWLIST if os.environ.get(ENV_ALLOWLIST) else "the node's registry allow-list"
            raise RegistryNotAllowed(
                f"image {ref} is on registry {ref.registry!r}, which {source} does not allow "
                f"(allowed: {', '.join(sorted(self.allowed))})"
            )

    def base_url(self, registry: str) -> str:
        if registry == "docker.io":
            registry = "registry-1.docker.io"
        scheme = "http" if (registry in self.insecure or _is_loopback(registry)) else "https"
        return f"{scheme}://{registry}"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    @classmethod
    def from_json(cls, d: dict) -> "Descriptor":
        return cls(d.get("mediaType", ""), d["digest"], int(d.get("size", 0)))


@dataclass(frozen=True)
class ResolvedImage:
    """A platform-specific manifest with its config and layers."""

    reference: ImageReference
    manifest_digest: str
    manifest: dict
    config: Descriptor
    layers: tuple[Descriptor, ...]


_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


class RegistryClient:
    def __init__(self, policy: RegistryPolicy | None = None, *, timeout: float = 60.0):
        self.policy = policy or RegistryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None
        #: Authorization values per (registry, scope, who presented them), and whether credentials
        #: were presented; per-pull views share their parent's, so a token is reused across pulls
        #: only by pulls presenting the same credentials (or, anonymous, none)
        self._tokens: dict[tuple[str, str, str], tuple[str, bool]] = {}
        self._pull_credentials: dict[str, Credential] = {}
        self._parent: RegistryClient | None = None
        #: registries this client presented credentials to (and they were accepted)
        self.authenticated: set[str] = set()

    def with_credentials(self, credentials: dict[str, Credential]) -> "RegistryClient":
        """A client for one pull: ``credentials`` (per registry host) first, then the node's; shares
        this client's HTTP session, keeps its own tokens; closing it closes nothing."""
        view = RegistryClient(self.policy)
        view._timeout = self._timeout
        view._parent = self._parent or self
        view._pull_credentials = dict(credentials)
        view._tokens = view._parent._tokens
        return view

    def _token_key(self, registry: str, scope: str) -> tuple[str, str, str]:
        cred = self.credential_for(registry)
        who = hashlib.sha256(f"{cred.username}\0{cred.password}".encode()).hexdigest()[:32] if cred else ""
        return registry, scope, who

    def credential_for(self, registry: str) -> Credential | None:
        """What this client presents to ``registry`` when asked: the pod's, else the node's, else nothing."""
        cred = self._pull_credentials.get(registry)
        if cred is not None:
            return cred
        pair = self.policy.credentials.get(registry)
        return Credential(pair[0], pair[1], NODE_CREDENTIALS) if pair else None

    async def __aenter__(self) -> "RegistryClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._parent is None and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._parent is not None:
            return self._parent._http()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # -- requests with auth -------------------------------------------------------------
    async def _request(self, ref: ImageReference, method: str, path: str, *, scope_actions: str = "pull",
                       headers: dict | None = None, data=None, allow_redirects: bool = True,
                       params: dict | None = None) -> aiohttp.ClientResponse:
        self.policy.check(ref)
        url = path if path.startswith("http") else f"{self.policy.base_url(ref.registry)}/v2/{ref.repository}/{path}"
        scope = f"repository:{ref.repository}:{scope_actions}"
        hdrs = dict(headers or {})
        token_key = self._token_key(ref.registry, scope)
        cached = self._tokens.get(token_key)
        if cached:
            hdrs["Authorization"] = cached[0]
        try:
            resp = await self._http().request(method, url, headers=hdrs, data=data,
                                              allow_redirects=allow_redirects, params=params)
            if resp.status != 401 and cached and cached[1]:
                self.authenticated.add(ref.registry)  # accepted earlier from these same credentials
            if resp.status == 401:
                challenge = resp.headers.get("WWW-Authenticate", "")
                resp.release()
                self._tokens.pop(token_key, None)  # a cached token that expired: ask again, once
                auth = await self._authorize(ref, challenge, scope)
                hdrs["Authorization"] = auth
                resp = await self._http().request(method, url, headers=hdrs, data=data,
                                                  allow_redirects=allow_redirects, params=params)
                if resp.status == 401:
                    resp.release()
                    raise self._refused(ref)
                presented = challenge.split(" ", 1)[0].lower() == "basic" or self.credential_for(ref.registry) is not None
                self._tokens[token_key] = (auth, presented)
                if presented:
                    self.authenticated.add(ref.registry)
            return resp
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise ImagePullError(f"registry {ref.registry}: {method} {url}: {exc or type(exc).__name__}") from exc

    def _refused(self, ref: ImageReference) -> ImagePullError:
        cred = self.credential_for(ref.registry)
        if cred is None:
            return self._required(ref)
        return CredentialsRefused(f"registry {ref.registry} refused the credentials from {cred.source} "
                                  f"for {ref}: 401 Unauthorized")

    def _required(self, ref: ImageReference) -> CredentialsRequired:
        return CredentialsRequired(f"registry {ref.registry} requires credentials for {ref} and none were given "
                                   f"(no image pull secret of the pod and no node credentials name {ref.registry})")

    async def _authorize(self, ref: ImageReference, challenge: str, scope: str) -> str:
        cred = self.credential_for(ref.registry)
        creds = cred.pair() if cred else None
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            if not creds:
                raise self._required(ref)
            return _basic(*creds)
        if kind != "bearer":
            raise ImagePullError(f"registry {ref.registry}: unsupported auth challenge {challenge!r}")
        params = dict(_CHALLENGE_RE.findall(challenge))
        realm = params.pop("realm", None)
        if not realm:
            raise ImagePullError(f"registry {ref.registry}: bearer challenge without realm")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        auth = {"Authorization": _basic(*creds)} if creds else None
        try:
            async with self._http().get(realm, params=query, headers=auth) as resp:
                if resp.status == 401:
                    raise self._refused(ref)
                if resp.status != 200:
                    raise ImagePullError(f"registry {ref.registry}: token endpoint answered {resp.status}")
                body = orjson.loads(await resp.read())
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, orjson.JSONDecodeError) as exc:
            raise ImagePullError(f"registry {ref.registry}: token request failed: {exc}") from exc
        token = body.get("token") or body.get("access_token")
        if not token:
            raise ImagePullError(f"registry {ref.registry}: token endpoint returned no token")
        return f"Bearer {token}"

    # -- pull -----------------------------------------------------------------------------
    async def manifest_exists(self, ref: ImageReference, reference: str) -> bool:
        """HEAD the manifest ``reference`` with this client's credentials: may they pull it?

        True on 200, False on 404; refused or missing credentials raise (see ``_request``), and a
        403 (authenticated but not allowed) raises naming the registry."""
        resp = await self._request(ref, "HEAD", f"manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
        async with resp:
            if resp.status == 403:
                raise ImagePullError(f"registry {ref.registry} denied access to {ref} (403 Forbidden)")
            return resp.status == 200

    async def get_manifest(self, ref: ImageReference, reference: str | None = None) -> tuple[str, bytes, str]:
        """Return (media type, raw bytes, digest) of a manifest or index."""
        reference = reference or ref.reference
        resp = await self._request(ref, "GET", f"manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
        async with resp:
            if resp.status == 404:
                raise ImagePullError(f"{ref}: manifest unknown (no such image or tag on {ref.registry})")
            if resp.status != 200:
                raise ImagePullError(f"{ref}: registry answered {resp.status} for manifest {reference}")
            raw = await resp.read()
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise ImagePullError(f"{ref}: manifest digest mismatch: asked {reference}, got {digest}")
        if not media_type or media_type in ("application/json", "text/plain"):
            media_type = orjson.loads(raw).get("mediaType", OCI_MANIFEST)
        return media_type, raw, digest

    async def resolve(self, ref: ImageReference, *, arch: str | None = None, os_name: str = "linux") -> ResolvedImage:
        arch = arch or machine_arch()
        media_type, raw, digest = await self.get_manifest(ref)
        doc = _loads(raw, ref)
        if media_type in _INDEX_TYPES or "manifests" in doc:
            chosen = None
            for m in doc.get("manifests", []):
                plat = m.get("platform", {})
                if plat.get("os") == os_name and plat.get("architecture") == arch:
                    chosen = m
                    break
            if chosen is None:
                plats = sorted(f"{m.get('platform', {}).get('os')}/{m.get('platform', {}).get('architecture')}"
                               for m in doc.get("manifests", []))
                raise ImagePullError(f"{ref}: no image for {os_name}/{arch} (index has {', '.join(plats) or 'nothing'})")
            media_type, raw, digest = await self.get_manifest(ref, chosen["digest"])
            doc = _loads(raw, ref)
        if "config" not in doc or "layers" not in doc:
            raise ImagePullError(f"{ref}: unsupported manifest (media type {media_type!r})")
        return ResolvedImage(
            reference=ref,
            manifest_digest=digest,
            manifest=doc,
            config=Descriptor.from_json(doc["config"]),
            layers=tuple(Descriptor.from_json(layer) for layer in doc["layers"]),
        )

    async def fetch_blob(self, ref: ImageReference, desc: Descriptor, dest: Path) -> None:
        """Stream a blob to ``dest``, verifying its digest; ``dest`` appears only when verified."""
        algo, _, expected = desc.digest.partition(":")
        if algo != "sha256":
            raise ImagePullError(f"{ref}: unsupported digest algorithm {algo!r}")
        tmp = dest.with_name(dest.name + f".part-{os.getpid()}-{id(desc) & 0xffff:x}")
        resp = await self._request(ref, "GET", f"blobs/{desc.digest}")
        h = hashlib.sha256()
        try:
            async with resp:
                if resp.status != 200:
                    raise ImagePullError(f"{ref}: registry answered {resp.status} for blob {desc.digest}")
                with open(tmp, "wb") as f:
                    async for chunk in resp.content.iter_chunked(1 << 20):
                        h.update(chunk)
                        f.write(chunk)
            if h.hexdigest() != expected:
                raise ImagePullError(f"{ref}: blob {desc.digest} failed verification (got sha256:{h.hexdigest()})")
            os.replace(tmp, dest)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise ImagePullError(f"{ref}: downloading blob {desc.digest}: {exc}") from exc
        finally:
            if tmp.exists():
                tmp.unlink()

    # -- push -----------------------------------------------------------------------------
    async def blob_exists(self, ref: ImageReference, digest: str) -> bool:
        resp = await self._request(ref, "HEAD", f"blobs/{digest}", scope_actions="pull,push")
        async with resp:
            return resp.status == 200

    async def push_blob(self, ref: ImageReference, data: bytes, digest: str) -> None:
        if await self.blob_exists(ref, digest):
            return
        resp = await self._request(ref, "POST", "blobs/uploads/", scope_actions="pull,push")
        async with resp:
            if resp.status not in (202, 201):
                raise ImagePullError(f"{ref}: registry refused upload ({resp.status}): {await resp.text()}")
            location = resp.headers["Location"]
        if location.startswith("/"):
            location = self.policy.base_url(ref.registry) + location
        sep = "&" if "?" in location else "?"
        resp = await self._request(ref, "PUT", f"{location}{sep}digest={digest}", scope_actions="pull,push",
                                   headers={"Content-Type": "application/octet-stream"}, data=data)
        async with resp:
            if resp.status not in (201, 204):
                raise ImagePullError(f"{ref}: blob upload failed ({resp.status}): {await resp.text()}")

    async def put_manifest(self, ref: ImageReference, media_type: str, raw: bytes) -> str:
        resp = await self._request(ref, "PUT", f"manifests/{ref.tag or ref.reference}", scope_actions="pull,push",
                                   headers={"Content-Type": media_type}, data=raw)
        async with resp:
            if resp.status not in (201, 200):
                raise ImagePullError(f"{ref}: manifest upload failed ({resp.status}): {await resp.text()}")
        return "sha256:" + hashlib.sha256(raw).hexdigest()


def _basic(username: str, password: str) -> str:
    """An ``Authorization: Basic`` value (what aiohttp's deprecated ``BasicAuth.encode`` gave)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _loads(raw: bytes, ref: ImageReference) -> dict:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ImagePullError(f"{ref}: manifest is not JSON: {exc}") from exc
