"""``clusterctl provision -i INVENTORY PLAYBOOK``: an Ansible-compatible playbook run over SSH.

Everything that can be wrong without a host is checked first — options, extra vars, the
inventory, the whole playbook tree (YAML, keywords, modules, arguments, handlers, roles, task
files) and every variable the playbook's templates name — and reported as one line naming file,
line and task, before a single connection is opened. Exit codes follow ``ansible-playbook``:
0 all fine, 2 a host failed, 4 a host was unreachable; 1 for bad input (nothing was touched).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import yaml

from clusterctl.errors import ClusterctlError, UsageError
from clusterctl.provision.errors import PlaybookError

EXIT_BAD_INPUT = 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl provision", description="Run an Ansible-style playbook against an inventory over SSH.")
    p.add_argument("playbook", help="the playbook (YAML) to run")
    p.add_argument("-i", "--inventory", action="append", required=True, help="inventory file or folder (repeatable)")
    p.add_argument("-l", "--limit", help="further limit the hosts with a pattern")
    p.add_argument("-C", "--check", action="store_true", help="don't change anything; report what would change")
    p.add_argument("-D", "--diff", action="store_true", help="show the differences in changed files")
    p.add_argument("-e", "--extra-vars", action="append", default=[], help="k=v, @file.yml or a JSON/YAML mapping (repeatable)")
    p.add_argument("-f", "--forks", type=int, default=100, help="hosts worked on at once (default 100)")
    p.add_argument("-t", "--tags", action="append", default=[], help="only run tasks with these tags (comma-separated)")
    p.add_argument("--skip-tags", action="append", default=[], help="skip tasks with these tags")
    p.add_argument("--log-json", metavar="FILE", help="write one JSON event per line to FILE")
    p.add_argument("-v", "--verbose", action="count", default=0, help="show task results (-vv, -vvv for more)")
    p.add_argument("--accept-new-host-keys", action="store_true", help="trust and record unknown host keys (never changed ones)")
    p.add_argument("--known-hosts", help="known_hosts file to verify host keys against")
    p.add_argument("--timeout", type=float, default=None, help="seconds a single command may run (default: no limit)")
    p.add_argument("--handshakes", type=int, default=50, help="SSH handshakes in flight at once (default 50)")
    p.add_argument("--syntax-check", action="store_true", help="check the playbook and exit")
    p.add_argument("--skip-undefined-check", action="store_true",
                   help="don't refuse to start when a template names a variable nothing seems to define")
    return p


def parse_extra_vars(values: list[str]) -> dict:
    """``-e`` values, merged left to right: ``k=v`` words, ``@file`` (YAML/JSON), inline JSON/YAML."""
    from clusterctl.provision.playbook import load_yaml, parse_kv

    merged: dict = {}
    for raw in values:
        text = raw.strip()
        if text.startswith("@"):
            path = Path(text[1:]).expanduser()
            if not path.is_file():
                raise UsageError(f"-e {raw}: file {path} not found")
            data = load_yaml(path)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise UsageError(f"-e {raw}: {path} must hold a mapping")
            merged.update(data)
        elif text.startswith("{") or text.startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                try:
                    data = yaml.safe_load(text)
                except yaml.YAMLError as exc:
                    raise UsageError(f"-e {raw!r}: neither JSON nor YAML: {exc}") from exc
            if not isinstance(data, dict):
                raise UsageError(f"-e {raw!r}: must be a mapping")
            merged.update(data)
        elif text:
            try:
                merged.update(parse_kv(text, free_form=False))
            except ValueError as exc:
                raise UsageError(f"-e {raw!r}: {exc}") from exc
    return merged


def _tag_set(values: list[str]) -> frozenset:
    return frozenset(t.strip() for v in values for t in v.split(",") if t.strip())


def prepare(args: argparse.Namespace):
    """Load and check everything; returns (inventory, playbook, variables). Touches no host."""
    from clusterctl.provision.inventory import load_inventory
    from clusterctl.provision.playbook import parse_playbook, undefined_variables
    from clusterctl.provision.variables import VariableManager

    extra_vars = parse_extra_vars(args.extra_vars)
    inventory = load_inventory(args.inventory)
    playbook = parse_playbook(args.playbook)
    playbook_dir = str(Path(args.playbook).resolve().parent)
    known: set[str] = set(extra_vars)
    for name in inventory.hosts:
        known.update(k for k in inventory.host_vars(name, extra_basedirs=[playbook_dir]) if isinstance(k, str))
    for gname in inventory.groups:
        known.update(k for k in inventory.group_vars(gname) if isinstance(k, str))
    missing = [] if args.skip_undefined_check else undefined_variables(playbook, known)
    if missing:
        first = missing[0]
        more = f" (and {len(missing) - 1} more: {', '.join(m.name for m in missing[1:4])})" if len(missing) > 1 else ""
        raise PlaybookError(f"{first.where}: {first.task}: undefined variable {first.name!r}{more} "
                            "(define it, or pass --skip-undefined-check)")
    for play in playbook.plays:
        try:
            if "{{" not in play.hosts:
                inventory.select(play.hosts)
        except ClusterctlError as exc:
            raise PlaybookError(f"{play.file}:{play.line}: play {play.name!r}: hosts: {exc}") from exc
    variables = VariableManager(inventory, extra_vars=extra_vars, check_mode=args.check, diff_mode=args.diff)
    variables.playbook_dir = playbook_dir
    return inventory, playbook, variables


def run(args: argparse.Namespace, *, stream=None, sleep=None) -> int:
    from clusterctl.provision.executor import ExecOptions, PlaybookExecutor
    from clusterctl.provision.output import RunOutput

    inventory, playbook, variables = prepare(args)
    if args.syntax_check:
        print(f"playbook: {args.playbook}: no issues found")
        return 0
    log = open(args.log_json, "w", encoding="utf-8") if args.log_json else None  # noqa: SIM115 - closed below
    try:
        output = RunOutput(stream or sys.stdout, verbosity=args.verbose, diff=args.diff, log_json=log)
        opts = ExecOptions(
            check=args.check, diff=args.diff, forks=args.forks, handshake_concurrency=args.handshakes,
            tags=_tag_set(args.tags), skip_tags=_tag_set(args.skip_tags), limit=args.limit,
            known_hosts=args.known_hosts, accept_new_host_keys=args.accept_new_host_keys,
            command_timeout=args.timeout, verbosity=args.verbose,
        )
        if sleep is not None:
            opts.sleep = sleep
        executor = PlaybookExecutor(playbook, inventory, variables, output, opts)
        return asyncio.run(executor.run())
    finally:
        if log is not None:
            log.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.forks < 1:
        parser.error("--forks must be at least 1")
    if args.log_json:
        parent = os.path.dirname(os.path.abspath(args.log_json))
        if not os.path.isdir(parent):
            parser.error(f"--log-json: folder {parent} does not exist")
    try:
        return run(args)
    except ClusterctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
