"""The product wheelhouse: every wheel a host needs to install clusterctl with no internet.

Built on the controller from what is already here, never downloaded:

* the **product wheel** is packed straight from the source tree (``clusterctl/`` and
  ``node_runtime/``), optionally stamped with another version (``--to VERSION`` rewrites
  ``__version__`` in both packages' ``__init__.py`` inside the wheel — how an upgrade test makes
  version N+1);
* each **runtime dependency** (the product's ``Requires-Dist`` without extras, transitively, with
  markers evaluated for this interpreter) is re-packed from its installed files in the current
  environment (its ``RECORD`` minus scripts and bytecode; pip regenerates console scripts from
  ``entry_points.txt``). Hosts must match the controller's Python and platform — the preflight
  checks that.

Wheels are not byte-reproducible, so the wheelhouse is keyed by ``VERSION-HASH``, the hash
covering the product's sources, the version stamp and every dependency's name and version. The
result is cached under ``~/.cache/clusterctl/wheelhouse/KEY/`` as one uncompressed tar
(``wheelhouse.tar``) — a rerun with the same sources reuses it, and hosts key their install on
the same ``KEY``, so a rerun changes nothing.

Beside it, ``KEY/native/`` holds the product's C helpers built static for this machine's
architecture (``clusterctl.bootstrap.prebuilt``), which the install role ships to the hosts.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

from clusterctl.bootstrap.errors import WheelhouseError
from clusterctl.bootstrap.prebuilt import PrebuiltHelpers, build_prebuilt

PRODUCT = "clusterctl"
PACKAGES = ("clusterctl", "node_runtime")
SOURCE_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = Path(os.environ.get("CLUSTERCTL_CACHE", Path.home() / ".cache" / "clusterctl")) / "wheelhouse"
# a fixed timestamp keeps the product wheel's bytes stable for the same sources
ZIP_TIME = (2020, 1, 1, 0, 0, 0)
_VERSION_LINE = re.compile(r'^__version__ = "[^"]*"$', re.M)


@dataclass(frozen=True)
class Wheelhouse:
    version: str
    key: str            # VERSION-HASH: what hosts key their install on
    archive: Path       # wheelhouse.tar: every wheel, flat
    wheels: tuple[str, ...]
    native: PrebuiltHelpers | None = None   # KEY/native/: the C helpers, static, for hosts of this arch


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name)


def product_version(source_root: Path = SOURCE_ROOT) -> str:
    text = (source_root / "clusterctl" / "__init__.py").read_text()
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if not m:
        raise WheelhouseError(f"no __version__ in {source_root / 'clusterctl' / '__init__.py'}")
    return m.group(1)


def _product_files(source_root: Path) -> list[tuple[str, Path]]:
    out = []
    for pkg in PACKAGES:
        for path in sorted((source_root / pkg).rglob("*")):
            rel = path.relative_to(source_root)
            if path.is_dir() or "__pycache__" in rel.parts or path.suffix in (".pyc", ".pyo"):
                continue
            out.append((rel.as_posix(), path))
    return out


def runtime_dependencies(product: str = PRODUCT) -> list[metadata.Distribution]:
    """The installed distributions the product needs at run time (no extras of its own, but the
    extras its dependencies ask of each other, e.g. ``markdown-it-py[linkify]``), transitively."""
    env = default_environment()
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo: list[tuple[str, str]] = [(product, "")]
    while todo:
        name, extra = todo.pop()
        if (_norm(name).lower(), extra) in done:
            continue
        done.add((_norm(name).lower(), extra))
        dist = metadata.distribution(name)
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
                continue
            if req.marker is None and extra:
                continue  # already taken with the base requirements
            key = _norm(req.name).lower()
            if key == _norm(product).lower():
                continue
            if key not in seen:
                if not _installed(req.name):
                    raise WheelhouseError(f"{req.name} (needed by {name}) is not installed in {sys.prefix}")
                seen[key] = metadata.distribution(req.name)
            todo.append((req.name, ""))
            todo.extend((req.name, e) for e in req.extras)
    return sorted(seen.values(), key=lambda d: _norm(d.metadata["Name"]).lower())


def _installed(name: str) -> bool:
    try:
        metadata.distribution(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def _write_wheel(path: Path, files: list[tuple[str, bytes]], dist_info: str) -> None:
    record = [_record_line(a, d) for a, d in files] + [f"{dist_info}/RECORD,,"]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in files + [(f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode())]:
            info = zipfile.ZipInfo(arcname, ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def build_product_wheel(out_dir: Path, version: str, source_root: Path = SOURCE_ROOT) -> Path:
    dist = metadata.distribution(PRODUCT)
    dist_info = f"{PRODUCT}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for arcname, path in _product_files(source_root):
        data = path.read_bytes()
        if arcname in ("clusterctl/__init__.py", "node_runtime/__init__.py"):
            data = _VERSION_LINE.sub(f'__version__ = "{version}"', data.decode()).encode()
        files.append((arcname, data))
    requires = [f"Requires-Dist: {r}" for r in dist.requires or [] if "extra ==" not in r]
    meta = "\n".join(["Metadata-Version: 2.1", f"Name: {PRODUCT}", f"Version: {version}",
                      "Requires-Python: >=3.11", *requires]) + "\n"
    files.append((f"{dist_info}/METADATA", meta.encode()))
    files.append((f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: clusterctl\nRoot-Is-Purelib: true\nTag: py3-none-any\n"))
    entry_points = dist.read_text("entry_points.txt") or ""
    files.append((f"{dist_info}/entry_points.txt", entry_points.encode()))
    files.append((f"{dist_info}/top_level.txt", ("\n".join(PACKAGES) + "\n").encode()))
    path = out_dir / f"{PRODUCT}-{version}-py3-none-any.whl"
    _write_wheel(path, files, dist_info)
    return path


def repack_installed(dist: metadata.Distribution, out_dir: Path) -> Path:
    """A wheel made from an installed distribution's files (as pip installed them)."""
    name, version = dist.metadata["Name"], dist.version
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    if not tags:
        raise WheelhouseError(f"{name} {version} has no WHEEL tags (installed from an sdist or egg?)")
    site = Path(dist.locate_file(""))
    dist_info_name = None
    files: list[tuple[str, bytes]] = []
    for rel in dist.files or []:
        arc = rel.as_posix()
        if arc.startswith("..") or "__pycache__" in rel.parts or arc.endswith((".pyc", ".pyo")):
            continue
        top = rel.parts[0]
        if top.endswith(".dist-info"):
            dist_info_name = top
            if rel.name in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                continue
        src = site / rel
        if src.is_file():
            files.append((arc, src.read_bytes()))
    if dist_info_name is None:
        raise WheelhouseError(f"{name} {version}: no .dist-info in its RECORD")
    interp = sorted({t.split("-")[0] for t in tags})
    abi = sorted({t.split("-")[1] for t in tags})
    plat = sorted({t.split("-")[2] for t in tags})
    tag = f"{'.'.join(interp)}-{'.'.join(abi)}-{'.'.join(plat)}"
    path = out_dir / f"{_norm(name)}-{version}-{tag}.whl"
    _write_wheel(path, files, dist_info_name)
    return path


def wheelhouse_key(version: str, source_root: Path = SOURCE_ROOT) -> str:
    h = hashlib.sha256(f"{version}\n{sys.version_info[:2]}\n".encode())
    for arcname, path in _product_files(source_root):
        h.update(arcname.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    for dist in [*runtime_dependencies(), metadata.distribution("pip")]:
        h.update(f"{dist.metadata['Name']}=={dist.version}\n".encode())
    return f"{version}-{h.hexdigest()[:12]}"


def build_wheelhouse(version: str | None = None, *, cache_root: Path = DEFAULT_CACHE,
                     source_root: Path = SOURCE_ROOT, native_cache: Path | None = None) -> Wheelhouse:
    """The wheelhouse for ``version`` (default: the source's), from the cache when it is there, with
    its prebuilt C helpers (static builds cached in ``native_cache``, default ``cache_root/../native``)."""
    version = version or product_version(source_root)
    key = wheelhouse_key(version, source_root)
    dest = cache_root / key
    wh = _wheels(version, key, dest, source_root)
    native = build_prebuilt(dest / "native", source_root=source_root,
                            cache_root=native_cache or Path(cache_root).parent / "native")
    return Wheelhouse(wh.version, wh.key, wh.archive, wh.wheels, native)


def _wheels(version: str, key: str, dest: Path, source_root: Path) -> Wheelhouse:
    archive = dest / "wheelhouse.tar"
    listing = dest / "wheels.txt"
    cache_root = dest.parent
    if archive.exists() and listing.exists():
        return Wheelhouse(version, key, archive, tuple(listing.read_text().split()))
    work = cache_root / f".{key}.{os.getpid()}"
    wheels_dir = work / "wheels"
    try:
        wheels_dir.mkdir(parents=True, exist_ok=True)
        wheels = [build_product_wheel(wheels_dir, version, source_root)]
        wheels += [repack_installed(d, wheels_dir) for d in runtime_dependencies()]
        wheels.append(repack_installed(metadata.distribution("pip"), wheels_dir))
        with tarfile.open(work / "wheelhouse.tar", "w") as tar:
            for w in wheels:
                info = tar.gettarinfo(str(w), arcname=w.name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(w, "rb") as fh:
                    tar.addfile(info, fh)
        (work / "wheels.txt").write_text("\n".join(w.name for w in wheels) + "\n")
        for w in wheels:
            w.unlink()
        wheels_dir.rmdir()
        if dest.exists():  # built concurrently by another run: theirs is as good
            _rmtree(work)
        else:
            work.rename(dest)
    except OSError as exc:
        _rmtree(work)
        raise WheelhouseError(f"cannot build the wheelhouse in {work}: {exc}") from exc
    return Wheelhouse(version, key, archive, tuple(listing.read_text().split()))


def _rmtree(path: Path) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
