"""A bootstrap inventory over a local lab: the lab's ``inventory.ini`` (hosts, keys, known_hosts)
plus the ``control_plane`` and ``workers`` groups and per-worker variables.

Used by the bootstrap tests and ``clusterctl bench bootstrap``; also shows the inventory shape a
person writes by hand (see ``inventory/lab.ini``).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

#: agent timings for labs: a Node's Ready condition and Lease follow within a second
LAB_NODE_TIMINGS = {"lease_renew": 1.0, "status_update": 1.0}


def _host_value(value) -> str:
    """A value on a host line (shlex-split by the inventory reader): quoted when it must be."""
    text = value if isinstance(value, str) else json.dumps(value)
    return shlex.quote(text)


def _vars_value(value) -> str:
    """A value in a ``[group:vars]`` section (read as a Python/JSON literal when it is one)."""
    return value if isinstance(value, str) else json.dumps(value)


def write_lab_inventory(lab, dest: Path, *, control_plane: list[str], workers: list[str],
                        host_vars: dict[str, dict] | None = None, worker_vars: dict | None = None,
                        control_plane_vars: dict | None = None) -> Path:
    """Write ``dest`` (an INI inventory) for ``lab``; returns its path."""
    host_vars = host_vars or {}
    lines = [lab.inventory_path.read_text().rstrip(), "", "[control_plane]"]
    lines += [name for name in control_plane]
    if control_plane_vars:
        lines += ["", "[control_plane:vars]"] + [f"{k}={_vars_value(v)}" for k, v in control_plane_vars.items()]
    lines += ["", "[workers]"]
    for name in workers:
        extra = " ".join(f"{k}={_host_value(v)}" for k, v in (host_vars.get(name) or {}).items())
        lines.append(f"{name} {extra}".rstrip())
    vars_ = {"node_timings": LAB_NODE_TIMINGS, **(worker_vars or {})}
    lines += ["", "[workers:vars]"] + [f"{k}={_vars_value(v)}" for k, v in vars_.items()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("\n".join(lines) + "\n")
    return dest


def snapshot_source(dest: Path, source_root: Path | None = None) -> Path:
    """Copy the product's packages to ``dest`` so a build sees one fixed tree (the working tree
    may change under a long test); returns ``dest``."""
    from clusterctl.bootstrap.wheelhouse import PACKAGES, SOURCE_ROOT
    root = source_root or SOURCE_ROOT
    for pkg in PACKAGES:
        shutil.copytree(root / pkg, dest / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    return dest
