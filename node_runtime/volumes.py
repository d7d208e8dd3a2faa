"""Pod volumes on the node: emptyDir (disk or ``medium: Memory``), hostPath, configMap, secret,
downwardAPI — and how they become bind mounts of the pod's containers.

Each pod owns ``<data_dir>/pods/<uid>/volumes/<name>/``. Secret volumes and Memory emptyDirs are
tmpfs mounts there (secret bytes never touch a disk), as are the files rendered for
configMap/downwardAPI volumes so nothing is left behind. Rendered volumes use kubelet's atomic
writer layout: the files live in ``..<timestamp>/``, ``..data`` is a symlink to it and every key
is a symlink through ``..data``; an update writes a new timestamped dir and renames a new
``..data`` over the old one, so a container sees either the old or the new set, never a mix,
and updated ConfigMaps reach running pods.
"""

from __future__ import annotations

import base64
import ctypes
import os
import shutil
import time
from pathlib import Path
from typing import Any

from node_runtime.errors import NodeRuntimeError

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
MNT_DETACH = 2


class VolumeError(NodeRuntimeError):
    """A volume could not be prepared (missing ConfigMap/Secret, bad path, mount failure)."""


def mount_tmpfs(target: Path, size: str | None = None) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(target):
        return
    opts = "mode=0755" + (f",size={size}" if size else "")
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", ctypes.c_ulong(2 | 4), opts.encode()) != 0:
        err = ctypes.get_errno()
        raise VolumeError(f"cannot mount tmpfs on {target}: {os.strerror(err)}")


def unmount(target: Path) -> None:
    if os.path.ismount(target):
        if _libc.umount2(str(target).encode(), MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise VolumeError(f"cannot unmount {target}: {os.strerror(err)}")


def write_atomic(directory: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    """Publish ``files`` (relative path -> (content, mode)) into ``directory`` kubelet-style.

    Returns False when the current ``..data`` already holds exactly these files.
    """
    directory.mkdir(parents=True, exist_ok=True)
    data_link = directory / "..data"
    if data_link.is_symlink():
        current = directory / os.readlink(data_link)
        if _same(current, files):
            return False
    stamp = directory / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns() % 10**9}"
    stamp.mkdir()
    for rel, (content, mode) in files.items():
        p = stamp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
        os.chmod(p, mode)
    tmp_link = directory / "..data_tmp"
    if tmp_link.is_symlink():
        tmp_link.unlink()
    os.symlink(stamp.name, tmp_link)
    old = os.readlink(data_link) if data_link.is_symlink() else None
    os.replace(tmp_link, data_link)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = directory / top
        if not link.is_symlink():
            os.symlink(f"..data/{top}", link)
    for entry in directory.iterdir():
        if entry.is_symlink() and not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink()
    if old and old != stamp.name:
        shutil.rmtree(directory / old, ignore_errors=True)
    return True


def _same(current: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    try:
        existing = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
        if existing != set(files):
            return False
        return all((current / rel).read_bytes() == content for rel, (content, _) in files.items())
    except OSError:
        return False


def _project(data: dict[str, bytes], items: list[dict] | None, default_mode: int) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, default_mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key")
        if key not in data:
            raise VolumeError(f'key "{key}" not found')
        out[item.get("path") or key] = (data[key], int(item.get("mode", default_mode)))
    return out


def configmap_bytes(cm: dict) -> dict[str, bytes]:
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (cm.get("binaryData") or {}).items()})
    return data


def secret_bytes(secret: dict) -> dict[str, bytes]:
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


class PodVolumes:
    """The volumes of one pod under ``root`` (= ``<data_dir>/pods/<uid>/volumes``)."""

    def __init__(self, root: Path, pod: dict, *, lookup, field_value):
        """``lookup(kind, namespace, name) -> obj | None`` reads ConfigMaps/Secrets (from the API);
        ``field_value(path) -> str`` resolves downward API field paths for this pod."""
        self.root = root
        self.pod = pod
        self.lookup = lookup
        self.field_value = field_value
        self.paths: dict[str, Path] = {}
        self.rendered: set[str] = set()

    @property
    def namespace(self) -> str:
        return self.pod["metadata"].get("namespace", "default")

    async def setup(self) -> None:
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            target = self.root / name
            if "hostPath" in vol:
                hp = vol["hostPath"]
                path = Path(hp["path"])
                kind = hp.get("type") or ""
                if kind in ("DirectoryOrCreate",):
                    path.mkdir(parents=True, exist_ok=True)
                elif kind == "FileOrCreate" and not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
                elif kind in ("Directory", "File") and not path.exists():
                    raise VolumeError(f'hostPath type check failed: {path} is not a {kind.lower()}')
                self.paths[name] = path
            elif "emptyDir" in vol:
                if (vol["emptyDir"] or {}).get("medium") == "Memory":
                    mount_tmpfs(target, (vol["emptyDir"] or {}).get("sizeLimit"))
                    os.chmod(target, 0o777)
                else:
                    target.mkdir(parents=True, exist_ok=True)
                    os.chmod(target, 0o777)
                self.paths[name] = target
            elif any(k in vol for k in ("configMap", "secret", "downwardAPI", "projected")):
                mount_tmpfs(target)
                self.paths[name] = target
                self.rendered.add(name)
            else:
                kinds = sorted(k for k in vol if k != "name")
                raise VolumeError(f'volume "{name}": unsupported volume type {", ".join(kinds) or "(none)"}')
        await self.refresh()

    async def refresh(self) -> bool:
        """(Re)render configMap/secret/downwardAPI volumes; True if any content changed."""
        changed = False
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            if vol["name"] not in self.rendered:
                continue
            files = await self._render(vol)
            if files is None:
                continue
            changed |= write_atomic(self.paths[vol["name"]], files)
        return changed

    async def _render(self, vol: dict) -> dict[str, tuple[bytes, int]] | None:
        if "configMap" in vol:
            return await self._source("ConfigMap", vol["configMap"])
        if "secret" in vol:
            spec = dict(vol["secret"], name=vol["secret"].get("secretName"))
            return await self._source("Secret", spec)
        if "downwardAPI" in vol:
            return self._downward(vol["downwardAPI"])
        if "projected" in vol:
            out: dict[str, tuple[bytes, int]] = {}
            mode = int(vol["projected"].get("defaultMode", 0o644))
            for src in vol["projected"].get("sources") or []:
                part: dict | None = None
                if "configMap" in src:
                    part = await self._source("ConfigMap", dict(src["configMap"], defaultMode=mode))
                elif "secret" in src:
                    part = await self._source("Secret", dict(src["secret"], defaultMode=mode))
                elif "downwardAPI" in src:
                    part = self._downward(dict(src["downwardAPI"], defaultMode=mode))
                out.update(part or {})
            return out
        return None

    async def _source(self, kind: str, spec: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
        name = spec.get("name")
        obj = await self.lookup(kind, self.namespace, name)
        mode = int(spec.get("defaultMode", 0o644))
        if obj is None:
            if spec.get("optional"):
                return {}
            raise VolumeError(f'{kind.lower()} "{name}" not found')
        data = configmap_bytes(obj) if kind == "ConfigMap" else secret_bytes(obj)
        try:
            return _project(data, spec.get("items"), mode)
        except VolumeError as exc:
            raise VolumeError(f'{kind.lower()} "{name}": {exc}') from None

    def _downward(self, spec: dict) -> dict[str, tuple[bytes, int]]:
        mode = int(spec.get("defaultMode", 0o644))
        out = {}
        for item in spec.get("items") or []:
            ref = item.get("fieldRef") or {}
            value = self.field_value(ref.get("fieldPath", "")) if ref else self.field_value("resource:" + (item.get("resourceFieldRef") or {}).get("resource", ""))
            out[item["path"]] = (value.encode(), int(item.get("mode", mode)))
        return out

    def mounts_for(self, container: dict) -> list[dict]:
        """The container's volumeMounts as runtime bind mounts."""
        out = []
        for vm in container.get("volumeMounts") or []:
            source = self.paths.get(vm["name"])
            if source is None:
                raise VolumeError(f'volumeMount "{vm["name"]}": no volume of that name')
            if vm.get("subPath"):
                source = source / vm["subPath"]
                if not source.exists():
                    source.mkdir(parents=True, exist_ok=True)
            out.append({"source": str(source), "target": vm["mountPath"], "type": "bind", "readonly": bool(vm.get("readOnly"))
                        or vm["name"] in self.rendered})
        return out

    async def teardown(self) -> None:
        for name, path in self.paths.items():
            if path.is_relative_to(self.root):
                unmount(path)
        self.paths.clear()
        shutil.rmtree(self.root, ignore_errors=True)
