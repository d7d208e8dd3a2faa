"""Debian packages the hosts need but cannot download (they have no internet): fetched once on the
controller with ``apt-get download`` into ``~/.cache/clusterctl/debs/`` and uploaded by the
playbooks. Today that is ``etcd-server`` for an HA control plane (``clusterctl_store: etcd``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from clusterctl.bootstrap.errors import BootstrapError
from clusterctl.bootstrap.wheelhouse import DEFAULT_CACHE

DEB_CACHE = DEFAULT_CACHE.parent / "debs"


def fetch_deb(name: str, *, cache: Path = DEB_CACHE) -> Path:
    """The newest cached ``name_*.deb``, downloaded with ``apt-get download`` when there is none."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"{name}_*.deb"))
    if found:
        return found[-1]
    try:
        out = subprocess.run(["apt-get", "download", name], cwd=cache, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BootstrapError(f"cannot run apt-get download {name} in {cache}: {exc}") from exc
    found = sorted(cache.glob(f"{name}_*.deb"))
    if out.returncode != 0 or not found:
        raise BootstrapError(f"apt-get download {name} failed in {cache}: {out.stderr.strip()[-500:]}")
    return found[-1]


def inventory_store(inventory: list[str]) -> str:
    """``clusterctl_store`` as the inventory sets it for the first control-plane host (default tinydb)."""
    from clusterctl.provision.inventory import load_inventory
    inv = load_inventory(inventory)
    hosts = inv.select("control_plane")
    if not hosts:
        return "tinydb"
    return str(inv.host_vars(hosts[0]).get("clusterctl_store", "tinydb"))
