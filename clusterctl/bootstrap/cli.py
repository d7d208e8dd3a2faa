"""``clusterctl bootstrap``, ``clusterctl upgrade`` and ``clusterctl remove-node``: short commands
over ``playbooks/bootstrap.yml``, ``upgrade.yml`` and ``reset.yml``.

Each builds (or takes from the cache) the product wheelhouse on the controller, adds the facts
the playbooks check hosts against (the controller's architecture, Python, clock) as extra vars,
and runs the playbook with the provisioner (same output, ``--log-json`` feed and exit codes as
``clusterctl provision``). Options they do not know themselves (``-v``, ``--forks``,
``--known-hosts``, ...) go to the provisioner unchanged.

- ``clusterctl bootstrap -i INV [--kubeconfig-out FILE]``
- ``clusterctl upgrade -i INV [--to VERSION] [--check]`` (``--to`` stamps the wheelhouse with
  that version; ``--check`` prints the plan and changes nothing)
- ``clusterctl remove-node -i INV HOST`` drains HOST, deletes its Node and runs ``reset.yml`` on it
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from clusterctl.bootstrap.packages import fetch_deb, inventory_store
from clusterctl.bootstrap.wheelhouse import build_wheelhouse

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def controller_vars(version: str | None, source: str | None = None) -> dict:
    wh = build_wheelhouse(version, source_root=Path(source).resolve()) if source else build_wheelhouse(version)
    return {
        "clusterctl_wheelhouse": str(wh.archive),
        "clusterctl_release": wh.key,
        "clusterctl_version": wh.version,
        "clusterctl_arch": platform.machine(),
        "clusterctl_python": "%d.%d" % sys.version_info[:2],
        "clusterctl_controller_time": int(time.time()),
    }


def run_playbook(playbook: str, inventory: list[str], extra: dict, passthrough: list[str]) -> int:
    from clusterctl.provision.cli import main as provision_main
    argv = [str(PLAYBOOKS / playbook)]
    for inv in inventory:
        argv += ["-i", inv]
    argv += ["-e", json.dumps(extra), *passthrough]
    return provision_main(argv)


def _common(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("-i", "--inventory", action="append", required=True, help="inventory file or folder")
    p.add_argument("--source", help="build the product wheel from this source tree (holding clusterctl/ and "
                                    "node_runtime/) instead of the one running this command")
    return p


def bootstrap_main(argv: list[str]) -> int:
    p = _common("clusterctl bootstrap", "from an inventory to a running cluster (playbooks/bootstrap.yml)")
    p.add_argument("--kubeconfig-out", help="where the admin kubeconfig goes (default: kubeconfig beside the inventory)")
    args, rest = p.parse_known_args(argv)
    extra = controller_vars(None, args.source)
    if inventory_store(args.inventory) == "etcd":
        extra["clusterctl_etcd_deb"] = str(fetch_deb("etcd-server"))
    if args.kubeconfig_out:
        extra["clusterctl_kubeconfig_dest"] = str(Path(args.kubeconfig_out).resolve())
    return run_playbook("bootstrap.yml", args.inventory, extra, rest)


def upgrade_plan(inventory: list[str], *, version: str, release: str, serial: str | int = "20%",
                 max_fail_percentage: int = 0, on_failure: str = "pause") -> str:
    """The upgrade, step by step, as ``upgrade.yml`` will run it (batches cut as the executor does)."""
    from clusterctl.provision.executor import _serial_batches
    from clusterctl.provision.inventory import load_inventory
    inv = load_inventory(inventory)
    control_plane, workers = inv.select("control_plane"), inv.select("workers")
    batches = _serial_batches(workers, [serial], lambda v: v) if workers else []
    lines = [f"upgrade to {version} (release {release})",
             f"1. preflight on {len(control_plane) + len(workers)} hosts; stop before any change if one fails",
             "2. stage the release on every host (installed beside the running one, not active)",
             "3. control plane, one host at a time (stop, back up the store, switch, start, API on the new version):"]
    lines += [f"     {h}" for h in control_plane]
    lines.append(f"4. workers in {len(batches)} batch(es) of serial={serial}, max_fail_percentage={max_fail_percentage}, "
                 f"on failure: {on_failure}; per node cordon, drain, switch, restart, health gate, uncordon:")
    lines += [f"     batch {i}: {', '.join(b)}" for i, b in enumerate(batches, 1)]
    lines.append("nodes already on the release and schedulable are skipped (a rerun resumes)")
    return "\n".join(lines)


def upgrade_main(argv: list[str]) -> int:
    p = _common("clusterctl upgrade", "inventory-driven rolling upgrade (playbooks/upgrade.yml)")
    p.add_argument("--to", dest="version", help="the version to install (default: the controller's)")
    p.add_argument("--check", action="store_true", help="print the plan (hosts, order, batches) and change nothing")
    p.add_argument("--serial", default="20%", help="workers upgraded at once: a number or a percentage (default 20%%)")
    p.add_argument("--max-fail-percentage", type=int, default=0, help="failed workers tolerated per batch, in percent")
    p.add_argument("--on-failure", choices=["pause", "rollback"], default="pause",
                   help="pause: leave the failed node cordoned on the new release; rollback: switch it back")
    args, rest = p.parse_known_args(argv)
    extra = controller_vars(args.version, args.source)
    if args.check:
        print(upgrade_plan(args.inventory, version=extra["clusterctl_version"], release=extra["clusterctl_release"],
                           serial=args.serial, max_fail_percentage=args.max_fail_percentage, on_failure=args.on_failure))
        return 0
    extra.update(upgrade_serial=args.serial, upgrade_max_fail_percentage=args.max_fail_percentage,
                 upgrade_on_failure=args.on_failure)
    return run_playbook("upgrade.yml", args.inventory, extra, rest)


def remove_node_main(argv: list[str]) -> int:
    p = _common("clusterctl remove-node", "drain a node, delete it from the cluster and uninstall it")
    p.add_argument("host", help="the inventory host to remove")
    args, rest = p.parse_known_args(argv)
    extra = {"remove_host": args.host}
    return run_playbook("reset.yml", args.inventory, extra, ["--limit", f"{args.host}:control_plane[0]", *rest])


def main(argv: list[str]) -> int:
    """Entry for ``clusterctl bootstrap`` (the lead maps the other two commands to their own)."""
    return bootstrap_main(argv)
