"""Build a single-layer OCI image from a directory or a tarball, and push it.

This is what lets a user without Docker ship an image (``clusterctl image push SRC NAME:TAG``) and
what tests use to make images from Debian's ``busybox-static``. The layer is a deterministic tar
(sorted entries, root ownership, mtime 0) so the same input gives the same digest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from node_runtime.errors import ImageError
from node_runtime.images.reference import parse_reference
from node_runtime.images.registry import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, RegistryClient, machine_arch


@dataclass
class ImageSpec:
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=lambda: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    working_dir: str | None = None
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None


@dataclass(frozen=True)
class BuiltImage:
    layer_gz: bytes
    layer_digest: str
    diff_id: str
    config: bytes
    config_digest: str
    manifest: bytes
    manifest_digest: str


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_from_directory(src: Path) -> bytes:
    """An uncompressed, deterministic tar of ``src`` (paths relative to it, owned by root)."""
    if not src.is_dir():
        raise ImageError(f"image source {src} is not a directory")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(src):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                full = Path(root) / name
                arcname = str(full.relative_to(src))
                info = tar.gettarinfo(str(full), arcname=arcname)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isfile():
                    with open(full, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
    return buf.getvalue()


def build_image(source: str | Path, spec: ImageSpec) -> BuiltImage:
    source = Path(source)
    if source.is_dir():
        layer = layer_from_directory(source)
    elif source.is_file():
        data = source.read_bytes()
        layer = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        try:
            tarfile.open(fileobj=io.BytesIO(layer)).getmembers()
        except tarfile.TarError as exc:
            raise ImageError(f"image source {source} is not a tar archive: {exc}") from exc
    else:
        raise ImageError(f"image source {source} does not exist")
    diff_id = _sha(layer)
    layer_gz = gzip.compress(layer, compresslevel=6, mtime=0)
    layer_digest = _sha(layer_gz)
    cfg: dict = {"Env": spec.env}
    if spec.entrypoint:
        cfg["Entrypoint"] = spec.entrypoint
    if spec.cmd:
        cfg["Cmd"] = spec.cmd
    if spec.working_dir:
        cfg["WorkingDir"] = spec.working_dir
    if spec.exposed_ports:
        cfg["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in spec.exposed_ports}
    if spec.labels:
        cfg["Labels"] = spec.labels
    if spec.user:
        cfg["User"] = spec.user
    config = orjson.dumps({
        "architecture": machine_arch(),
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "clusterctl image push"}],
    }, option=orjson.OPT_SORT_KEYS)
    config_digest = _sha(config)
    manifest = orjson.dumps({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": len(layer_gz)}],
    })
    return BuiltImage(layer_gz, layer_digest, diff_id, config, config_digest, manifest, _sha(manifest))


async def push_image(built: BuiltImage, name: str, client: RegistryClient) -> str:
    """Push blobs then the manifest; returns ``name@digest``."""
    ref = parse_reference(name)
    await client.push_blob(ref, built.layer_gz, built.layer_digest)
    await client.push_blob(ref, built.config, built.config_digest)
    digest = await client.put_manifest(ref, OCI_MANIFEST, built.manifest)
    return f"{ref.registry}/{ref.repository}@{digest}"
