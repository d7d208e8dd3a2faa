"""The `clusterctl` command: a thin dispatcher over one module per command family.

Each family lives in its own module exposing ``main(argv: list[str]) -> int`` with its own
argparse parser (``prog="clusterctl <cmd>"``). The dispatcher imports only the module that is
asked for, so `clusterctl get pods` does not pay for importing Textual or asyncssh.
Errors from the product (``ClusterctlError``) become one line on stderr and a non-zero exit.
"""

from __future__ import annotations

import importlib
import os
import sys

from clusterctl import __version__
from clusterctl.errors import ClusterctlError

#: command -> (module, one-line help). Verbs that share a module share its parser family.
COMMANDS: dict[str, tuple[str, str]] = {
    "lab": ("clusterctl.lab.cli", "make, break and remove throwaway SSH hosts on this machine"),
    "provision": ("clusterctl.provision.cli", "run an Ansible-style playbook against an inventory"),
    "inventory": ("clusterctl.provision.inventory_cli", "show a resolved inventory (--list, --host), convert from vagrant"),
    "bootstrap": ("clusterctl.bootstrap.cli", "turn an inventory into a running cluster (playbooks/bootstrap.yml)"),
    "upgrade": ("clusterctl.bootstrap.upgrade", "rolling, drained, health-gated upgrade of the cluster software"),
    "remove-node": ("clusterctl.bootstrap.remove_node", "drain a node and remove it from the cluster"),
    "control-plane": ("clusterctl.api.cli", "run the API server, scheduler and controllers"),
    "store": ("clusterctl.store.cli", "inspect, compact, back up and restore the cluster store"),
    "up": ("clusterctl.up", "a whole cluster on this machine in the foreground (control plane + N nodes)"),
    "tui": ("clusterctl.tui.cli", "the cluster live in the terminal"),
    "sim": ("clusterctl.sim.cli", "hollow nodes: register N simulated nodes that run nothing"),
    "image": ("node_runtime.images.cli", "build a single-layer OCI image from a directory and push it"),
    "bench": ("clusterctl.bench.cli", "run a benchmark and print one JSON object"),
}

#: kubectl-style verbs, all served by one module (issue 7 fills it in).
KUBECTL_VERBS = (
    "get", "describe", "apply", "create", "delete", "scale", "expose", "run", "set", "rollout",
    "logs", "exec", "cordon", "uncordon", "drain", "top", "label", "annotate", "version",
    "api-resources", "patch", "explain-schedule", "completion",
)


def _usage() -> str:
    lines = [f"clusterctl {__version__}", "", "usage: clusterctl [--kubeconfig FILE] COMMAND [ARGS...]", "", "commands:"]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<16}{help_text}")
    lines.append(f"  {'(kubectl verbs)':<16}{' '.join(KUBECTL_VERBS)}")
    lines.append("")
    lines.append("`clusterctl COMMAND -h` shows a command's options.")
    return "\n".join(lines)


def _split_command(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """Split global options (before the command) from the command and its arguments."""
    leading: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("-"):
            return leading, arg, argv[i + 1 :]
        leading.append(arg)
        # options that take a value as the next word
        if arg in ("--kubeconfig", "-n", "--namespace", "--context") and i + 1 < len(argv):
            leading.append(argv[i + 1])
            i += 1
        i += 1
    return leading, None, []


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    leading, command, rest = _split_command(argv)
    if command is None:
        if "--version" in leading:
            print(f"clusterctl {__version__}")
            return 0
        print(_usage(), file=sys.stdout if ("-h" in leading or "--help" in leading) else sys.stderr)
        return 0 if ("-h" in leading or "--help" in leading) else 2
    if command in COMMANDS:
        module_name = COMMANDS[command][0]
        args = leading + rest
    elif command in KUBECTL_VERBS:
        module_name = "clusterctl.kubectl.cli"
        args = leading + [command] + rest
    else:
        print(f"clusterctl: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(module_name)
    try:
        return int(module.main(args) or 0)
    except ClusterctlError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `clusterctl get pods | head`: the reader went away; not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
