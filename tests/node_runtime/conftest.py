"""Fixtures for node runtime tests: a real registry, a real control plane, images, and agents."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from node_runtime.images.registry_process import start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A real distribution registry on 127.0.0.1:<free port> for the whole session."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory):
    """A real API server (subprocess) shared by the node runtime tests."""
    import subprocess
    import sys

    from clusterctl.api.testing import FAST_TIMINGS, start_control_plane
    cp = start_control_plane(tmp_path_factory.mktemp("cp"), timings=FAST_TIMINGS, start=False)
    # the real control plane, started through a wrapper that registers clusterctl.api.node_proxy
    log = open(cp.log_file, "ab")
    cp.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cp_with_proxy.py")), "--config", str(cp.config_path)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    cp.wait_ready()
    from node_runtime.harness import wait_serving
    wait_serving(cp)
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def images(registry, tmp_path_factory):
    """name -> pushed image reference: busybox images web:v1, web:v2 (httpd on 8080), and tools."""
    from node_runtime.images.build import ImageSpec, build_image, push_image
    from node_runtime.images.registry import RegistryClient, RegistryPolicy
    from tests.node_runtime.rootfs import make_busybox_rootfs
    base = tmp_path_factory.mktemp("images")
    out = {}

    async def push_all():
        async with RegistryClient(RegistryPolicy()) as client:
            for tag, files, spec in [
                ("web:v1", {"www/index.html": "hello v1\n", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
                 ImageSpec(cmd=["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])),
                ("web:v2", {"www/index.html": "hello v2\n", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
                 ImageSpec(cmd=["/bin/httpd", "-f", "-p", "8080", "-h", "/www"])),
                ("tools:v1", {"etc/passwd": "root:x:0:0::/root:/bin/sh\n"},
                 ImageSpec(entrypoint=["/bin/sh", "-c"], cmd=["echo default-cmd"], working_dir="/tmp")),
            ]:
                root = make_busybox_rootfs(base / tag.replace(":", "_"), files)
                await push_image(build_image(root, spec), f"{registry.address}/{tag}", client)
                out[tag] = f"{registry.address}/{tag}"

    asyncio.run(push_all())
    return out


@pytest.fixture
def node_name():
    return f"nr-{uuid.uuid4().hex[:6]}"


@pytest.fixture
async def agent(control_plane, registry, images, tmp_path, node_name):
    """A real agent (in this event loop) with fast timings and its own node token."""
    from node_runtime.harness import AgentHandle
    handle = AgentHandle(control_plane, registry, tmp_path / "agent", node_name)
    await handle.start()
    yield handle
    await handle.close()
