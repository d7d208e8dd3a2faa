"""Images against a real registry: build + push, pull by tag and digest, verify, unpack, allow-list, GC."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from node_runtime.errors import ImageNotPresent, ImagePullError, RegistryNotAllowed
from node_runtime.images.build import ImageSpec, build_image, push_image
from node_runtime.images.reference import parse_reference
from node_runtime.images.registry import RegistryClient, RegistryPolicy
from node_runtime.images.store import ImageStore
from tests.node_runtime.rootfs import make_busybox_rootfs


@pytest.mark.parametrize("text,expected", [
    ("busybox", ("docker.io", "library/busybox", "latest", None)),
    ("127.0.0.1:5055/web:v1", ("127.0.0.1:5055", "web", "v1", None)),
    ("localhost/a/b", ("localhost", "a/b", "latest", None)),
    ("quay.io/x/y:1.2@sha256:" + "a" * 64, ("quay.io", "x/y", "1.2", "sha256:" + "a" * 64)),
])
def test_parse_reference(text, expected):
    r = parse_reference(text)
    assert (r.registry, r.repository, r.tag, r.digest) == expected


@pytest.mark.parametrize("bad", ["", "UPPER/case", "a:b:c", "x@sha256:12"])
def test_parse_reference_rejects(bad):
    with pytest.raises(Exception):
        parse_reference(bad)


async def _push(tmp_path, registry, name, files, **spec):
    root = make_busybox_rootfs(tmp_path / name.replace("/", "_").replace(":", "_"), files)
    built = build_image(root, ImageSpec(**spec))
    async with RegistryClient(RegistryPolicy()) as client:
        await push_image(built, f"{registry.address}/{name}", client)
    return built


async def test_push_pull_two_versions_differ(tmp_path, registry):
    b1 = await _push(tmp_path, registry, "web:v1", {"www/index.html": "v1\n"}, cmd=["/bin/httpd", "-f"])
    b2 = await _push(tmp_path, registry, "web:v2", {"www/index.html": "v2\n"}, cmd=["/bin/httpd", "-f"])
    assert b1.manifest_digest != b2.manifest_digest
    policy = RegistryPolicy(allowed=frozenset({registry.address}))
    async with RegistryClient(policy) as client:
        store = ImageStore(tmp_path / "images", client)
        img1 = await store.ensure(f"{registry.address}/web:v1")
        img2 = await store.ensure(f"{registry.address}/web:v2")
        (d1,), (d2,) = store.layer_dirs(img1), store.layer_dirs(img2)
        assert (d1 / "www/index.html").read_text() == "v1\n"
        assert (d2 / "www/index.html").read_text() == "v2\n"
        assert os.path.islink(d1 / "bin/sh")
        assert img1.config["Cmd"] == ["/bin/httpd", "-f"]
        # pinned by digest resolves to the same content
        pinned = await store.ensure(f"{registry.address}/web@{b1.manifest_digest}")
        assert pinned.layers == img1.layers


async def test_build_is_deterministic(tmp_path):
    a = build_image(make_busybox_rootfs(tmp_path / "a", {"x": "1"}), ImageSpec())
    b = build_image(make_busybox_rootfs(tmp_path / "b", {"x": "1"}), ImageSpec())
    assert a.layer_digest == b.layer_digest and a.manifest_digest == b.manifest_digest


async def test_allow_list_refuses_before_any_network(tmp_path, registry):
    policy = RegistryPolicy.from_config(environ={"CLUSTERCTL_REGISTRIES": registry.address})
    async with RegistryClient(policy) as client:
        store = ImageStore(tmp_path / "images", client)
        with pytest.raises(RegistryNotAllowed, match="CLUSTERCTL_REGISTRIES|allow-list"):
            # an unresolvable name: if we tried DNS or TCP this would be a different error
            await store.ensure("registry.invalid.example/x:1")
        with pytest.raises(RegistryNotAllowed):
            await store.ensure("busybox")


async def test_pull_policy_never_and_missing_tag(tmp_path, registry):
    async with RegistryClient(RegistryPolicy()) as client:
        store = ImageStore(tmp_path / "images", client)
        with pytest.raises(ImageNotPresent):
            await store.ensure(f"{registry.address}/nothing:here", "Never")
        with pytest.raises(ImagePullError, match="manifest unknown"):
            await store.ensure(f"{registry.address}/nothing:here")


async def test_tampered_blob_is_rejected(tmp_path, registry):
    built = await _push(tmp_path, registry, "tamper:v1", {"www/index.html": "original\n"})
    # flip bytes of the stored layer blob inside the registry's own storage
    hexd = built.layer_digest.split(":")[1]
    data = next((registry.data_dir / "storage").rglob(f"blobs/sha256/{hexd[:2]}/{hexd}/data"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    async with RegistryClient(RegistryPolicy()) as client:
        store = ImageStore(tmp_path / "images", client)
        with pytest.raises(ImagePullError, match="failed verification"):
            await store.ensure(f"{registry.address}/tamper:v1")
    assert not list((tmp_path / "images/layers").iterdir())


async def test_gc_removes_unused(tmp_path, registry):
    await _push(tmp_path, registry, "gc:a", {"a": "a"})
    await _push(tmp_path, registry, "gc:b", {"b": "b"})
    async with RegistryClient(RegistryPolicy()) as client:
        store = ImageStore(tmp_path / "images", client)
        a = await store.ensure(f"{registry.address}/gc:a")
        b = await store.ensure(f"{registry.address}/gc:b")
        removed = store.gc({f"{registry.address}/gc:a"})
        assert removed == [f"{registry.address}/gc:b"]
        assert store.get(f"{registry.address}/gc:a") is not None
        assert not store.layer_dirs(b)[0].exists()
        assert store.layer_dirs(a)[0].exists()


def test_image_push_cli(tmp_path, registry):
    root = make_busybox_rootfs(tmp_path / "root", {"www/index.html": "cli\n"})
    out = subprocess.run([sys.executable, "-m", "clusterctl", "image", "push", str(root),
                          f"{registry.address}/cli:v1", "--cmd", "/bin/httpd -f -p 8080", "--port", "8080"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "pushed" in out.stdout and "sha256:" in out.stdout
