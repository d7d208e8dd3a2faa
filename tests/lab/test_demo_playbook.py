"""The README's first command: a fresh lab, then the demo playbook over real SSH with clusterctl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
CLUSTERCTL = str(Path(sys.executable).with_name("clusterctl"))


def test_demo_playbook_runs_on_a_fresh_lab(lab_factory) -> None:
    lab = lab_factory(3)
    result = subprocess.run(
        [CLUSTERCTL, "provision", "-i", str(lab.inventory_path), str(REPO / "playbooks" / "demo.yml")],
        capture_output=True, text=True, timeout=150,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for host in lab.hosts:
        motd = subprocess.run(lab.ssh_argv(host.name, "cat /etc/motd /srv/clusterctl-demo/neighbours"),
                              capture_output=True, text=True, timeout=60).stdout
        assert motd.startswith(f"Welcome to {host.name} ({host.ip}).")
        assert motd.splitlines()[-3:] == ["h1", "h2", "h3"]
