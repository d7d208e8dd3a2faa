"""`clusterctl inventory`: show a resolved inventory the way ``ansible-inventory`` does; convert Vagrant.

    clusterctl inventory -i F [-i F2] --list [--export] [--yaml]   as `ansible-inventory --list`
    clusterctl inventory -i F --host HOST                 one host's variables as JSON
    clusterctl inventory -i F --graph [GROUP] [--vars]    the group tree
    clusterctl inventory -i F --select PATTERN            hosts matching a host pattern, one a line
    clusterctl inventory from-vagrant [--ssh-config FILE | --vagrant-dir DIR] [-o OUT.ini]
                                      [--control-plane NAME ...] [--known-hosts FILE]
"""

from __future__ import annotations

import argparse
import json
import sys

from clusterctl.errors import UsageError
from clusterctl.provision.inventory import load_inventory


def _show_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clusterctl inventory",
        description="Show a resolved Ansible inventory (like ansible-inventory).",
        epilog="clusterctl inventory from-vagrant -h: write an inventory from `vagrant ssh-config`.",
    )
    p.add_argument("-i", "--inventory", action="append", required=True, metavar="SOURCE", help="inventory file or folder (repeatable)")
    action = p.add_mutually_exclusive_group(required=True)
    action.add_argument("--list", action="store_true", help="all groups and hosts as JSON (ansible-inventory --list)")
    action.add_argument("--host", metavar="HOST", help="one host's variables as JSON")
    action.add_argument("--graph", nargs="?", const="all", metavar="GROUP", help="the group tree from GROUP (default all)")
    action.add_argument("--select", metavar="PATTERN", help="hosts matching an Ansible host pattern, one a line")
    p.add_argument("--export", action="store_true", help="with --list: group vars under their groups, not merged into hosts")
    p.add_argument("-y", "--yaml", action="store_true", help="with --list/--host: YAML instead of JSON")
    p.add_argument("--vars", action="store_true", help="with --graph: show variables")
    p.add_argument("--limit", metavar="PATTERN", help="with --list: only hosts matching PATTERN")
    return p


def _vagrant_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="clusterctl inventory from-vagrant",
        description="Write an INI inventory (control_plane/workers) from `vagrant ssh-config` output.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--ssh-config", metavar="FILE", help="saved `vagrant ssh-config` output (default: run vagrant)")
    src.add_argument("--vagrant-dir", metavar="DIR", help="folder with the Vagrantfile to run `vagrant ssh-config` in")
    p.add_argument("-o", "--output", metavar="OUT.ini", help="write here (default: stdout)")
    p.add_argument("--control-plane", action="append", metavar="NAME", help="machine that is a control-plane node (repeatable)")
    p.add_argument("--known-hosts", metavar="FILE", help="known_hosts file the inventory verifies keys against (default: beside OUT)")
    return p


def _print_json(data: object) -> None:
    # ansible-inventory's own formatting: sorted keys, 4-space indent, UTF-8 as is
    print(json.dumps(data, indent=4, sort_keys=True, ensure_ascii=False, default=str))


def _print_yaml(data: object) -> None:
    import yaml

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data: object) -> bool:
            return True

    sys.stdout.write(yaml.dump(data, Dumper=_NoAliases, default_flow_style=False, allow_unicode=True))


def main(argv: list[str]) -> int:
    argv = list(argv)
    if argv and argv[0] == "from-vagrant":
        from clusterctl.provision.vagrant import inventory_from_vagrant

        args = _vagrant_parser().parse_args(argv[1:])
        text = inventory_from_vagrant(
            ssh_config_file=args.ssh_config,
            vagrant_dir=args.vagrant_dir,
            control_plane=args.control_plane,
            out=args.output,
            known_hosts=args.known_hosts,
        )
        if args.output:
            print(f"wrote {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
        return 0
    args = _show_parser().parse_args(argv)
    inv = load_inventory(args.inventory)
    if args.list:
        if args.yaml:
            _print_yaml(inv.to_yaml_data(export=args.export, limit=args.limit))
        else:
            _print_json(inv.to_list_json(export=args.export, limit=args.limit))
    elif args.host:
        (_print_yaml if args.yaml else _print_json)(inv.host_json(args.host))
    elif args.graph:
        if args.graph not in inv.groups:
            raise UsageError(f"--graph needs a group name; {args.graph!r} is not a group of {', '.join(args.inventory)}")
        print(inv.graph(args.graph, show_vars=args.vars))
    else:
        for host in inv.select(args.select):
            print(host)
    return 0
