"""Test images from Debian's busybox-static: a ~1 MB rootfs with sh, httpd, wget, nc."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def make_busybox_rootfs(dest: Path, files: dict[str, str] | None = None) -> Path:
    """A ~1 MB rootfs: busybox-static with its applets linked, plus ``files`` (path -> text)."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("sh", "httpd", "wget", "nc", "cat", "echo", "ls", "sleep", "ps", "id", "hostname", "env", "head", "dd", "mkdir", "touch", "grep"):
        link = dest / "bin" / applet
        if not link.exists():
            os.symlink("busybox", link)
    for d in ("etc", "tmp", "proc", "sys", "dev", "www", "root"):
        (dest / d).mkdir(exist_ok=True)
    for rel, text in (files or {}).items():
        p = dest / rel.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return dest


def unpacked_layers(root: Path, tmp_path: Path) -> list[str]:
    """``root`` built into an image layer and unpacked by the real image store's code path."""
    from node_runtime.images.build import ImageSpec, build_image
    from node_runtime.images.store import ImageStore
    built = build_image(root, ImageSpec())
    blob = tmp_path / "layer.tar.gz"
    blob.write_bytes(built.layer_gz)
    store = ImageStore(tmp_path / "images", client=None)  # type: ignore[arg-type]
    dest = store.root / "layers" / built.diff_id.split(":")[1]
    store._unpack_layer(blob, built.diff_id, dest)
    return [str(dest)]
