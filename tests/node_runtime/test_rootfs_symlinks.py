"""An image's symlinks never lead container setup outside the container's root.

A hostile image can ship ``/data -> /some/host/dir`` (absolute) or ``/etc/x -> ../../../../tmp``
(climbing). Volume mount points, /dev, /proc and friends are made and mounted with every path
resolved inside the root (openat2 RESOLVE_IN_ROOT), so such links point into the container's own
tree: nothing appears on the host, and the volume is where the link says *inside* the container.
Both the compiled shim and the Python launcher fallback are checked.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from node_runtime.runtime.process import ProcessRuntime
from tests.node_runtime.rootfs import make_busybox_rootfs, unpacked_layers
from tests.node_runtime.test_process_runtime import cfg, run_to_exit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the process runtime needs root (CI runs as root)")


def hostile_layers(tmp_path, outside) -> list[str]:
    root = make_busybox_rootfs(tmp_path / "src")
    os.symlink(str(outside), root / "data")                          # absolute, to a host path
    os.symlink("../../../../../../../../" + str(outside).lstrip("/") + "/climb", root / "etc" / "climb")
    return unpacked_layers(root, tmp_path)


@pytest.fixture(params=["shim", "launcher"])
def any_runtime(request, tmp_path):
    kw = {} if request.param == "shim" else {"compilers": (), "shim_cache": None}
    rt = ProcessRuntime(node_name=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state", **kw)
    assert (rt.shim is not None) == (request.param == "shim")
    yield rt
    for cid in list(rt.known()):
        rt.kill(cid)
    rt.cgroups.cleanup()


async def test_volume_mounts_through_image_symlinks_stay_inside_the_root(any_runtime, tmp_path):
    outside = tmp_path / "host-side"                     # the host directory the image's links name
    outside.mkdir()
    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "hello").write_text("from the volume\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    layers = hostile_layers(tmp_path, outside)
    c = cfg("links", layers, ["sh", "-c", "cat /data/vol/hello /data/f.txt; ls -d /data/t /etc/climb/sub && echo OK"],
            tmp_path, mounts=[{"source": str(volume), "target": "/data/vol", "type": "bind"},
                              {"source": str(single), "target": "/data/f.txt", "type": "bind"},
                              {"source": "", "target": "/data/t", "type": "tmpfs", "options": ""},
                              {"source": str(volume), "target": "/etc/climb/sub", "type": "bind", "readonly": True}])
    status, log = await asyncio.wait_for(run_to_exit(any_runtime, c, timeout=60), 90)
    assert status.code == 0, (status, log)
    assert "from the volume" in log and "one file" in log and log.rstrip().endswith("OK"), log
    assert list(outside.iterdir()) == [], "setup created something on the host through an image symlink"
