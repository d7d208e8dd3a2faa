"""The wheelhouse: built from the source without any download, cached by version + content hash,
and installable offline into a fresh venv of the machine's python3 (as hosts do)."""

from __future__ import annotations

import subprocess
import tarfile

import pytest

from clusterctl.bootstrap.cli import upgrade_plan
from clusterctl.bootstrap.lab_inventory import snapshot_source
from clusterctl.bootstrap.prebuilt import expected_keys
from clusterctl.bootstrap.wheelhouse import build_wheelhouse


@pytest.mark.timeout(420)  # 111 s seen at load 17 (builds wheels, installs offline twice)
def test_wheelhouse_installs_offline_with_the_stamped_version_and_is_cached(tmp_path):
    source = snapshot_source(tmp_path / "source")
    cache = tmp_path / "cache"
    wh = build_wheelhouse("9.8.7", cache_root=cache, source_root=source)
    assert wh.key.startswith("9.8.7-") and "clusterctl-9.8.7-py3-none-any.whl" in wh.wheels
    assert any(w.startswith("pip-") for w in wh.wheels) and any(w.lower().startswith("aiohttp-") for w in wh.wheels)
    mtime = wh.archive.stat().st_mtime_ns
    # the C helpers, static, beside the wheels where the install role looks (clusterctl_native_dir)
    assert wh.native is not None and wh.native.tree == wh.archive.parent / "native"
    assert wh.native.keys == expected_keys(source) and wh.native.missing == ()
    shim = wh.native.tree / next(k for k in wh.native.keys if k.startswith("ccl-shim-")) / "ccl-shim"
    shim_mtime = shim.stat().st_mtime_ns
    assert (tmp_path / "native" / shim.parent.name / "ccl-shim").is_file()  # the build cache: cache_root/../native
    again = build_wheelhouse("9.8.7", cache_root=cache, source_root=source)
    assert again.archive.stat().st_mtime_ns == mtime and shim.stat().st_mtime_ns == shim_mtime

    (source / "clusterctl" / "bootstrap" / "new_module.py").write_text("# a change\n")
    assert build_wheelhouse("9.8.7", cache_root=cache, source_root=source).key != wh.key

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with tarfile.open(wh.archive) as tar:
        tar.extractall(wheels)
    pip = next(wheels.glob("pip-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    subprocess.run([str(venv / "bin" / "python"), f"{pip}/pip", "install", "--quiet", "--no-index", "--no-compile",
                    "--find-links", str(wheels), "clusterctl==9.8.7"], check=True, timeout=120)
    out = subprocess.run([str(venv / "bin" / "clusterctl"), "--version"], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert out.stdout.strip() == "clusterctl 9.8.7"
    agent = subprocess.run([str(venv / "bin" / "python"), "-c", "import node_runtime.agent as a; print(a.KUBELET_VERSION)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path)  # not the source tree's package
    assert agent.stdout.strip() == "v1.32.0+clusterctl.9.8.7", agent.stderr


def test_upgrade_plan_lists_control_plane_first_then_worker_batches(tmp_path):
    inv = tmp_path / "inventory.ini"
    inv.write_text("[control_plane]\ncp1 ansible_host=127.0.0.1\n[workers]\n" +
                   "".join(f"w{i} ansible_host=127.0.0.1\n" for i in range(1, 6)))
    plan = upgrade_plan([str(inv)], version="0.2.0", release="0.2.0-abc", serial="40%", max_fail_percentage=20)
    assert "upgrade to 0.2.0 (release 0.2.0-abc)" in plan
    assert plan.index("     cp1") < plan.index("batch 1")
    assert "batch 1: w1, w2\n" in plan and "batch 2: w3, w4\n" in plan and "batch 3: w5\n" in plan
    assert "max_fail_percentage=20" in plan
