"""A pod's registry credentials: its ``imagePullSecrets`` read into per-registry credentials.

Kubernetes' kubelet reads every Secret a pod lists in ``spec.imagePullSecrets`` (as the node: the
API server's node authorizer lets a node read exactly the Secrets its pods reference) and uses the
credentials they hold for that pod's pulls only. This module owns the decoding, the host matching
and the reporting, so the image code stays free of Kubernetes objects:

- **Types.** ``kubernetes.io/dockerconfigjson`` (``data[".dockerconfigjson"]`` = ``{"auths": {KEY:
  ENTRY}}``) and the legacy ``kubernetes.io/dockercfg`` (``data[".dockercfg"]`` = ``{KEY: ENTRY}``);
  an ENTRY has ``auth`` (base64 ``user:password``) or ``username`` + ``password``.
- **Keys** are matched as kubelet matches them (``registry_key``, ``key_matches``): the scheme is
  dropped and the host lowercased; Docker Hub's many names (``index.docker.io``,
  ``registry-1.docker.io``, ``registry.hub.docker.com``, ``docker.io``) are one, ``docker.io`` —
  the name ``reference.parse_reference`` gives Hub images; a leading ``/v1/`` or ``/v2/`` of the path
  is the registry API's, not a repository (``https://host:5000/v1/`` → ``host:5000``). A port is part
  of the host: a key ``reg:5000`` serves ``reg:5000/app`` and not ``reg/app``. A key's path narrows
  it to the repositories under that path (``reg/team`` serves ``reg/team/app``, not ``reg/other``
  — nor ``reg/teamx``: unlike kubelet's plain string prefix, whole path segments). A host part may be
  a glob (``*.example.com`` serves ``a.example.com``, not ``example.com`` or ``a.b.example.com``:
  each dot-separated part is matched on its own, as kubelet does).
- **Choice per image** (``credentials_for``): of the keys that match an image, the most specific
  serves its pull — a literal host before a glob, then the longer path; between equals, the first
  Secret listed (kubelet tries every match in that order until one pulls; we present one).
- **Problems** — a Secret that does not exist, has another type, or holds undecodable JSON or
  base64 — never stop the pull (it goes on with what is left, anonymously at worst, as kubelet
  does); each comes back as a ``SecretProblem`` whose message names the Secret and never quotes
  its content, for the pod's Warning event.
- **Secrecy.** ``Credential`` hides its password from ``repr``; nothing here logs; messages name
  Secrets and registries only.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import orjson

from node_runtime.errors import NodeRuntimeError
from node_runtime.images.reference import DOCKER_HUB, parse_reference

TYPE_DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
TYPE_DOCKERCFG = "kubernetes.io/dockercfg"
_DATA_KEY = {TYPE_DOCKERCONFIGJSON: ".dockerconfigjson", TYPE_DOCKERCFG: ".dockercfg"}
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io"}

#: reads a Secret (namespace, name) as the node; None when it does not exist, SecretUnreadable on errors
SecretReader = Callable[[str, str], Awaitable["dict | None"]]


class SecretUnreadable(NodeRuntimeError):
    """A pull Secret could not be read from the API server (other than not existing)."""


@dataclass(frozen=True)
class Credential:
    """A username and password for one registry, and where they came from (for messages)."""

    username: str
    password: str = field(repr=False)
    source: str = ""

    def pair(self) -> tuple[str, str]:
        return self.username, self.password


@dataclass(frozen=True)
class SecretProblem:
    """An image pull Secret that could not be used (the pull goes on without it)."""

    secret: str
    message: str


def registry_key(key: str) -> str:
    """A docker config key normalised: ``host[:port][/path]``, scheme, API version and trailing
    slashes dropped (``https://Reg:5000/v2/team/`` → ``reg:5000/team``)."""
    rest = key.strip()
    for scheme in ("https://", "http://"):
        if rest.lower().startswith(scheme):
            rest = rest[len(scheme):]
            break
    host, _, path = rest.partition("/")
    host = host.lower()
    host = DOCKER_HUB if host in _HUB_ALIASES else host
    path = path.strip("/")
    if path in ("v1", "v2") or path.startswith(("v1/", "v2/")):
        path = path[3:]
    return f"{host}/{path}" if path else host


def registry_host(key: str) -> str:
    """A docker config key as the registry host it names (``https://index.docker.io/v1/`` → ``docker.io``)."""
    return registry_key(key).split("/", 1)[0]


def key_matches(key: str, registry: str, repository: str) -> bool:
    """Whether normalised ``key`` serves an image of ``registry`` (``host[:port]``) / ``repository``."""
    key_host, _, key_path = key.partition("/")
    pattern_name, _, pattern_port = key_host.partition(":")
    name, _, port = registry.lower().partition(":")
    if pattern_port != port:
        return False
    pattern_parts, parts = pattern_name.split("."), name.split(".")
    if len(pattern_parts) != len(parts) or not all(fnmatch.fnmatchcase(part, pattern)
                                                   for pattern, part in zip(pattern_parts, parts)):
        return False
    return not key_path or repository == key_path or repository.startswith(key_path + "/")


def credentials_for(credentials: Mapping[str, Credential], image: str) -> dict[str, Credential]:
    """The one credential that serves ``image``'s pull, as ``{registry host: credential}`` (what the
    image client takes), or ``{}``: the most specific matching key (a literal host before a glob,
    then the longer path; between equals, the first listed)."""
    ref = parse_reference(image)
    matching = [(index, key) for index, key in enumerate(credentials) if key_matches(key, ref.registry, ref.repository)]
    if not matching:
        return {}
    _, best = min(matching, key=lambda m: ("*" in m[1].partition("/")[0], -len(m[1].partition("/")[2]), m[0]))
    return {ref.registry: credentials[best]}


def decode_secret(secret: dict) -> dict[str, Credential]:
    """Credentials per registry host in one image pull Secret; ``ValueError`` says why it cannot be used."""
    meta = secret.get("metadata") or {}
    label = f"{meta.get('namespace') or 'default'}/{meta.get('name') or '?'}"
    stype = secret.get("type") or "Opaque"
    if stype not in _DATA_KEY:
        raise ValueError(f"has type {stype!r}, not {TYPE_DOCKERCONFIGJSON!r} or {TYPE_DOCKERCFG!r}")
    data_key = _DATA_KEY[stype]
    encoded = (secret.get("data") or {}).get(data_key)
    if not isinstance(encoded, str):
        raise ValueError(f"has no {data_key!r} key")
    try:
        doc = orjson.loads(base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        # no detail from the decoder: its message could quote the content
        raise ValueError(f"{data_key!r} is not base64-encoded JSON") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{data_key!r} is not a JSON object")
    auths = doc.get("auths") if stype == TYPE_DOCKERCONFIGJSON else doc
    if not isinstance(auths, dict):
        raise ValueError(f"{data_key!r} has no \"auths\" object")
    out: dict[str, Credential] = {}
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{data_key!r}: the entry for {registry_host(str(key))!r} is not an object")
        username, password = entry.get("username"), entry.get("password")
        if entry.get("auth"):
            try:
                username, sep, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise ValueError(f"{data_key!r}: the \"auth\" of {registry_host(str(key))!r} is not base64 of "
                                 f"\"username:password\"") from None
            if not sep:
                raise ValueError(f"{data_key!r}: the \"auth\" of {registry_host(str(key))!r} has no \":\" "
                                 f"between username and password")
        if not isinstance(username, str) or not isinstance(password, str) or not username:
            continue  # identity tokens and empty entries carry nothing we can present
        out.setdefault(registry_key(str(key)), Credential(username, password, f"image pull secret {label!r}"))
    return out


async def pod_credentials(pod: dict, read_secret: SecretReader) -> tuple[dict[str, Credential], list[SecretProblem]]:
    """The pod's credentials per normalised key (first Secret listed wins; ``credentials_for`` picks
    the one for an image) and the Secrets it could not use."""
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    creds: dict[str, Credential] = {}
    problems: list[SecretProblem] = []
    for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
        name = (ref or {}).get("name") if isinstance(ref, Mapping) else None
        if not name:
            continue
        try:
            secret = await read_secret(namespace, name)
        except SecretUnreadable as exc:
            problems.append(SecretProblem(name, f'image pull secret "{name}" could not be read ({exc}); '
                                                f"pulling without it"))
            continue
        if secret is None:
            problems.append(SecretProblem(name, f'image pull secret "{name}" not found in namespace "{namespace}"; '
                                                f"pulling without it"))
            continue
        try:
            found = decode_secret(secret)
        except ValueError as exc:
            problems.append(SecretProblem(name, f'image pull secret "{name}" {exc}; pulling without it'))
            continue
        for host, cred in found.items():
            creds.setdefault(host, cred)
    return creds, problems
