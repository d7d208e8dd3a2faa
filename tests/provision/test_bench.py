"""``clusterctl bench provision``: a quick smoke run with both baselines on 2 lab hosts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clusterctl.bench.provision import bench_dir, pyinfra_inventory

pytestmark = pytest.mark.lab


@pytest.mark.timeout(420)  # 64 s at load 10 (ansible is most of it); the suite's 180 s default is too close
def test_bench_provision_prints_one_json_object_with_all_figures():
    proc = subprocess.run(
        [sys.executable, "-m", "clusterctl", "bench", "provision", "--hosts", "2", "--json"],
        capture_output=True, text=True, timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for key in ("hosts", "clusterctl_s", "ansible_s", "pyinfra_s", "speedup_vs_ansible", "speedup_vs_pyinfra",
                "clusterctl_rerun_s", "clusterctl_cli_s"):
        assert key in result, key
    assert result["hosts"] == 2
    for key in ("clusterctl_s", "ansible_s", "pyinfra_s", "clusterctl_rerun_s", "clusterctl_cli_s"):
        assert isinstance(result[key], float) and result[key] > 0, (key, result[key])
    # every tool did the same work on fresh hosts: 7 of the 10 tasks change something per host
    assert result["clusterctl_changed"] == result["ansible_changed"] == 14
    assert result["clusterctl_rerun_changed"] == 0
    assert result["speedup_vs_ansible"] == pytest.approx(result["ansible_s"] / result["clusterctl_s"], rel=0.02)


def test_workload_is_found_and_pyinfra_inventory_is_python(tmp_path):
    assert (bench_dir() / "site.yml").is_file()

    class Host:
        def __init__(self, name, ip):
            self.name, self.ip = name, ip

    class FakeLab:
        hosts = [Host("h1", "10.0.0.1")]
        key_path = tmp_path / "key"
        known_hosts_path = tmp_path / "known_hosts"

    scope: dict = {}
    exec(pyinfra_inventory(FakeLab), scope)  # noqa: S102 - it is the generated inventory file
    ((name, data),) = scope["nodes"]
    assert name == "h1" and data["ssh_hostname"] == "10.0.0.1"
    assert data["ssh_strict_host_key_checking"] == "yes" and data["ssh_known_hosts_file"].endswith("known_hosts")
