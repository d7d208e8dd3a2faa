"""Image references (``[registry/]repository[:tag][@digest]``), parsed the way Docker does.

A first path component is a registry host only if it has a ``.`` or ``:`` or is ``localhost``;
otherwise the image lives on Docker Hub (``docker.io``, ``library/`` for single names). We parse
Docker Hub names correctly but the allow-list (see ``registry``) decides whether we may go there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from node_runtime.errors import ImageError

DOCKER_HUB = "docker.io"
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class ImageReference:
    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry's manifest endpoint for: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_reference(image: str) -> ImageReference:
    if not image or image != image.strip():
        raise ImageError(f"invalid image reference {image!r}")
    rest = image
    digest = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ImageError(f"invalid image reference {image!r}: bad digest {digest!r}")
    registry = DOCKER_HUB
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, rest = first, remainder
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise ImageError(f"invalid image reference {image!r}: bad tag {tag!r}")
    if registry == DOCKER_HUB and "/" not in rest:
        rest = f"library/{rest}"
    if not _REPO_RE.match(rest):
        raise ImageError(f"invalid image reference {image!r}: bad repository name {rest!r}")
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry=registry, repository=rest, tag=tag, digest=digest)
