"""``clusterctl lab``: make, break and remove throwaway SSH hosts on this machine.

    clusterctl lab up N [--dir DIR]      N fresh hosts; prints the inventory path and a host table
    clusterctl lab down [--dir DIR]      remove everything of the lab (also after a crash)
    clusterctl lab status [--dir DIR]    power, link and ssh state of each host
    clusterctl lab stop|start HOST       power a host off / on (disk and host key stay)
    clusterctl lab cut|heal HOST         take a host's network away / give it back
    clusterctl lab ssh HOST [CMD...]     log into a host (strict host key checking, the lab's key)

``DIR`` defaults to ``.lab`` in the current directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from clusterctl.lab.errors import LabError
from clusterctl.lab.lab import Lab

DEFAULT_DIR = ".lab"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterctl lab", description="throwaway SSH hosts on this machine")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--dir", default=DEFAULT_DIR, help=f"the lab's directory (default: {DEFAULT_DIR})")
        return p

    add("up", "make N fresh hosts (removes an earlier run of DIR first)").add_argument("n", type=int, metavar="N")
    add("down", "remove every process, interface, namespace and disk of the lab")
    add("status", "show each host's power, link and ssh state")
    for verb, text in (("stop", "power a host off"), ("start", "power a host on"),
                       ("cut", "take a host's network away"), ("heal", "give a host its network back")):
        add(verb, text).add_argument("host", metavar="HOST")
    # listed for --help; parsed by _ssh_args (argparse mangles a trailing command with options)
    add("ssh", "log into a host as root, or run CMD there: ssh HOST [--dir DIR] [--] [CMD...]")
    return parser


def _ssh_args(argv: list[str]) -> tuple[str | None, str, list[str]]:
    """``[--dir DIR] HOST [--dir DIR] [--] [CMD...]`` -> (host, dir, command)."""
    host, lab_dir, i = None, DEFAULT_DIR, 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--dir" and i + 1 < len(argv):
            lab_dir, i = argv[i + 1], i + 2
        elif arg.startswith("--dir="):
            lab_dir, i = arg.split("=", 1)[1], i + 1
        elif arg == "--":
            i += 1
            break
        elif host is None and not arg.startswith("-"):
            host, i = arg, i + 1
        else:
            break
    return host, lab_dir, argv[i:]


def _table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["ssh"] and not {"-h", "--help"} & set(argv[1:2]):
        host, lab_dir, command = _ssh_args(argv[1:])
        if host is None:
            print("usage: clusterctl lab ssh HOST [--dir DIR] [--] [CMD...]", file=sys.stderr)
            return 2
        try:
            ssh_argv = Lab(lab_dir).ssh_argv(host, *command)
        except LabError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        sys.stdout.flush()
        os.execvp(ssh_argv[0], ssh_argv)
    args = _parser().parse_args(argv)
    lab = Lab(args.dir)
    try:
        return _run(lab, args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _run(lab: Lab, args: argparse.Namespace) -> int:
    if args.verb == "up":
        started = time.monotonic()
        hosts = lab.up(args.n)
        elapsed = time.monotonic() - started
        print(f"{len(hosts)} hosts up in {elapsed:.2f} s")
        print(f"inventory:   {lab.inventory_path}")
        print(f"known_hosts: {lab.known_hosts_path}")
        print(f"key:         {lab.key_path}")
        print(_table([{"name": h.name, "ip": h.ip, "netns": h.netns} for h in hosts], ["name", "ip", "netns"]))
        return 0
    if args.verb == "down":
        lab.down()
        print(f"lab at {lab.dir} is down")
        return 0
    if args.verb == "status":
        rows = lab.status()
        if not rows:
            print(f"no lab at {lab.dir}")
            return 0
        for row in rows:
            row["ssh"] = "yes" if row["ssh"] else "no"
        print(_table(rows, ["name", "ip", "netns", "power", "link", "ssh"]))
        return 0
    getattr(lab, args.verb)(args.host)
    print(f"{args.host}: {args.verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
