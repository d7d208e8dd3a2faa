"""The Vagrantfile is valid Ruby (VMs cannot boot on this machine; see vagrant/README.md)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANTFILE = Path(__file__).resolve().parents[2] / "vagrant" / "Vagrantfile"


@pytest.mark.timeout(300)
def test_vagrantfile_is_valid_ruby():
    if shutil.which("ruby") is None:  # Debian's ruby: the only way to check the syntax here
        subprocess.run(["apt-get", "install", "-y", "-q", "ruby"], check=True, capture_output=True, timeout=280)
    out = subprocess.run(["ruby", "-c", str(VAGRANTFILE)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "Syntax OK" in out.stdout, out.stderr


def test_vagrantfile_defines_a_control_plane_and_workers_on_a_private_network_for_both_providers():
    text = VAGRANTFILE.read_text()
    for needle in ('name: "cp"', '"worker#{i}"', '"private_network"', 'provider "libvirt"', 'provider "virtualbox"'):
        assert needle in text
