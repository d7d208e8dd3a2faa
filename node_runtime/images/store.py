"""The node's content-addressed image cache.

Layout under ``root`` (one per node agent, so agents sharing a machine never collide)::

    blobs/sha256/<hex>          verified compressed blobs (configs, layers)
    layers/<diff-id hex>/       each layer unpacked once, shared by every image and pod using it
    images/<sha of name>.json   {name, manifest_digest, config_digest, layers:[diff ids], config}

Layers are unpacked for overlayfs: OCI whiteouts (``.wh.NAME``) become overlay whiteouts (0/0
character devices) and opaque directories get ``trusted.overlay.opaque=y``. Extraction refuses
absolute paths, ``..`` and links that leave the layer. Concurrent pulls of the same image share
one download. ``gc(in_use)`` removes images no pod uses, then unreferenced layers and blobs.

**Images pulled with credentials** (a pod's image pull Secrets or the node's registry credentials)
are shared by every pod of the node, as in Kubernetes — but not handed out blindly (what
Kubernetes' ``KubeletEnsureSecretPulledImages`` does): the record keeps a fingerprint (HMAC-SHA256
under a random per-store key in ``credential-key``, mode 0600; never the credential itself) of each
credential the registry accepted for it. A later ``ensure`` that would use the cached image — with
``IfNotPresent`` or ``Never`` — and presents another credential, or none, first asks the registry
with a manifest ``HEAD`` under its own credentials (anonymously when it has none): 200 → the cached
image (and the new fingerprint is remembered), refused/required → the pull fails as a pull would
(``Never`` fails at once, contacting nothing). Images the registry served anonymously need no check.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import os
import secrets
import shutil
import stat
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import orjson

from node_runtime.errors import ImageError, ImageNotPresent, ImagePullError
from node_runtime.images.reference import parse_reference
from node_runtime.images.pull_secrets import Credential
from node_runtime.images.registry import RegistryClient

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


@dataclass(frozen=True)
class Image:
    name: str
    manifest_digest: str
    config_digest: str
    layers: tuple[str, ...]          # diff ids, bottom first
    config: dict                     # the OCI image config's "config" object (Entrypoint, Cmd, Env, ...)

    @property
    def id(self) -> str:
        return self.config_digest


class ImageStore:
    def __init__(self, root: str | Path, client: RegistryClient):
        self.root = Path(root)
        self.client = client
        for sub in ("blobs/sha256", "layers", "images", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._inflight: dict[tuple[str, str], asyncio.Future] = {}
        self._key: bytes | None = None

    def _fingerprint(self, registry: str, cred: Credential | None) -> str:
        """A stable, non-reversible name for ``cred`` on ``registry`` ("" for no credential)."""
        if cred is None:
            return ""
        if self._key is None:
            path = self.root / "credential-key"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                self._key = path.read_bytes()
            else:
                key = secrets.token_bytes(32)
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                self._key = key
        msg = "\0".join((registry, cred.username, cred.password)).encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    def _authorized(self, canonical: str) -> list[str] | None:
        """Fingerprints of the credentials that pulled the cached image; None if it needed none."""
        try:
            d = orjson.loads(self._record_path(canonical).read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return d.get("authorized") or None

    def _remember(self, canonical: str, fingerprint: str) -> None:
        path = self._record_path(canonical)
        try:
            d = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        if fingerprint and fingerprint not in d.setdefault("authorized", []):
            d["authorized"].append(fingerprint)
            self._write_record(canonical, d)

    def _write_record(self, canonical: str, record: dict) -> None:
        tmp = self.root / "tmp" / f"rec-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.write_bytes(orjson.dumps(record))
        os.replace(tmp, self._record_path(canonical))

    # -- records ------------------------------------------------------------------------
    def _record_path(self, name: str) -> Path:
        return self.root / "images" / (hashlib.sha256(name.encode()).hexdigest()[:32] + ".json")

    def get(self, name: str) -> Image | None:
        canonical = str(parse_reference(name))
        path = self._record_path(canonical)
        if not path.exists():
            return None
        d = orjson.loads(path.read_bytes())
        if not all((self.root / "layers" / _hex(l)).is_dir() for l in d["layers"]):
            return None
        return Image(d["name"], d["manifest_digest"], d["config_digest"], tuple(d["layers"]), d["config"])

    def list(self) -> list[Image]:
        out = []
        for p in (self.root / "images").glob("*.json"):
            d = orjson.loads(p.read_bytes())
            out.append(Image(d["name"], d["manifest_digest"], d["config_digest"], tuple(d["layers"]), d["config"]))
        return out

    def layer_dirs(self, image: Image) -> list[Path]:
        """Unpacked layer folders, bottom first."""
        return [self.root / "layers" / _hex(d) for d in image.layers]

    # -- pulling ------------------------------------------------------------------------
    async def ensure(self, name: str, pull_policy: str = "IfNotPresent", *,
                     credentials: dict[str, Credential] | None = None) -> Image:
        """Return the image, pulling it as ``pull_policy`` (Always/IfNotPresent/Never) says.

        ``credentials`` (registry host → credential, from the pod's image pull Secrets) serve this
        pull only, before the node's; a cached image pulled with credentials is handed out only to
        a pull the registry lets see it (see the module docstring)."""
        ref = parse_reference(name)
        canonical = str(ref)
        client = self.client.with_credentials(credentials or {})
        fingerprint = self._fingerprint(ref.registry, client.credential_for(ref.registry))
        if pull_policy != "Always":
            image = self.get(canonical)
            if image is not None:
                authorized = self._authorized(canonical)
                if authorized is None or fingerprint in authorized:
                    return image
                if pull_policy == "Never":
                    raise ImageNotPresent(f'image "{name}" was pulled with credentials this pod does not present '
                                          f"for {ref.registry}, and pull policy Never forbids asking the registry")
                if await client.manifest_exists(ref, image.manifest_digest):
                    self._remember(canonical, fingerprint)
                    return image
                # gone from the registry: pull as if it were not cached (and fail as a pull fails)
            elif pull_policy == "Never":
                raise ImageNotPresent(f'image "{name}" is not present with pull policy of Never')
        key = (canonical, fingerprint)
        if key in self._inflight:
            return await asyncio.shield(self._inflight[key])
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            image = await self._pull(canonical, client, fingerprint)
            fut.set_result(image)
            return image
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: other waiters may not exist
            raise
        finally:
            del self._inflight[key]

    async def _pull(self, name: str, client: RegistryClient, fingerprint: str) -> Image:
        ref = parse_reference(name)
        resolved = await client.resolve(ref)
        cfg_blob = await self._blob(ref, resolved.config, client)
        config = orjson.loads(cfg_blob.read_bytes())
        diff_ids = tuple(config.get("rootfs", {}).get("diff_ids", []))
        if len(diff_ids) != len(resolved.layers):
            raise ImagePullError(f"{name}: config lists {len(diff_ids)} layers, manifest {len(resolved.layers)}")
        for desc, diff_id in zip(resolved.layers, diff_ids):
            layer_dir = self.root / "layers" / _hex(diff_id)
            if layer_dir.is_dir():
                continue
            blob = await self._blob(ref, desc, client)
            await asyncio.to_thread(self._unpack_layer, blob, diff_id, layer_dir)
        record = {"name": name, "manifest_digest": resolved.manifest_digest, "config_digest": resolved.config.digest,
                  "layers": list(diff_ids), "config": config.get("config", {})}
        if ref.registry in client.authenticated and fingerprint:
            record["authorized"] = [fingerprint]
        self._write_record(name, record)
        return Image(name, resolved.manifest_digest, resolved.config.digest, diff_ids, record["config"])

    async def _blob(self, ref, desc, client: RegistryClient) -> Path:
        path = self.root / "blobs" / "sha256" / _hex(desc.digest)
        if not path.exists():
            await client.fetch_blob(ref, desc, path)
        return path

    def _unpack_layer(self, blob: Path, diff_id: str, dest: Path) -> None:
        tmp = self.root / "tmp" / f"layer-{_hex(diff_id)[:16]}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        h = hashlib.sha256()
        try:
            with open(blob, "rb") as raw:
                magic = raw.read(2)
                raw.seek(0)
                stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
                hashing = _HashingReader(stream, h)
                with tarfile.open(fileobj=hashing, mode="r|") as tar:
                    for member in tar:
                        _extract_member(tar, member, tmp)
                hashing.drain()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImagePullError(f"layer {diff_id}: cannot unpack: {exc}") from exc
        if "sha256:" + h.hexdigest() != diff_id:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ImagePullError(f"layer {diff_id}: content does not match its diff id (got sha256:{h.hexdigest()})")
        os.replace(tmp, dest)

    # -- garbage collection ----------------------------------------------------------------
    def remove(self, name: str) -> bool:
        path = self._record_path(str(parse_reference(name)))
        if path.exists():
            path.unlink()
            return True
        return False

    def gc(self, in_use: set[str]) -> list[str]:
        """Remove images not in ``in_use`` (canonical names), then unreferenced layers/blobs."""
        removed = []
        canonical_in_use = {str(parse_reference(n)) for n in in_use}
        for image in self.list():
            if image.name not in canonical_in_use:
                self._record_path(image.name).unlink(missing_ok=True)
                removed.append(image.name)
        keep_layers = {_hex(l) for img in self.list() for l in img.layers}
        for d in (self.root / "layers").iterdir():
            if d.name not in keep_layers:
                shutil.rmtree(d, ignore_errors=True)
        # blobs are a download cache: drop them all once their images are gone
        keep_blobs = {_hex(img.config_digest) for img in self.list()}
        for b in (self.root / "blobs" / "sha256").iterdir():
            if b.name not in keep_blobs:
                b.unlink(missing_ok=True)
        return removed


def _hex(digest: str) -> str:
    return digest.split(":", 1)[-1]


class _HashingReader:
    """File-like wrapper hashing every byte read (the diff id is over the uncompressed tar)."""

    def __init__(self, f, h):
        self._f, self._h = f, h

    def read(self, n=-1):
        data = self._f.read(n)
        self._h.update(data)
        return data

    def drain(self):
        while self.read(1 << 20):
            pass


def _safe_target(root: Path, name: str) -> Path:
    parts = [p for p in Path(name).parts if p not in ("", ".", "/")]
    if any(p == ".." for p in parts):
        raise ImageError(f"layer entry {name!r} escapes the layer")
    return root.joinpath(*parts) if parts else root


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, root: Path) -> None:
    target = _safe_target(root, m.name)
    base = target.name
    if base == OPAQUE_MARKER:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.setxattr(target.parent, "trusted.overlay.opaque", b"y")
        except OSError:
            pass
        return
    if base.startswith(WHITEOUT_PREFIX):
        wo = target.with_name(base[len(WHITEOUT_PREFIX):])
        wo.parent.mkdir(parents=True, exist_ok=True)
        if wo.exists() or wo.is_symlink():
            _remove(wo)
        os.mknod(wo, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if (target.exists() or target.is_symlink()) and not (m.isdir() and target.is_dir()):
        _remove(target)
    if m.isdir():
        target.mkdir(exist_ok=True)
    elif m.isreg():
        src = tar.extractfile(m)
        with open(target, "wb") as f:
            shutil.copyfileobj(src, f, 1 << 20)
    elif m.issym():
        os.symlink(m.linkname, target)
    elif m.islnk():
        link_src = _safe_target(root, m.linkname)
        os.link(link_src, target)
    elif m.ischr() or m.isblk():
        kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
        os.mknod(target, kind | (m.mode & 0o777), os.makedev(m.devmajor, m.devminor))
    elif m.isfifo():
        os.mkfifo(target, m.mode & 0o777)
    else:
        return
    if not m.issym():
        os.chown(target, m.uid, m.gid, follow_symlinks=False)
        os.chmod(target, m.mode & 0o7777)
    else:
        os.chown(target, m.uid, m.gid, follow_symlinks=False)
    if not m.issym():
        os.utime(target, (m.mtime, m.mtime))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
