"""The kubectl-style verbs' argparse tree and dispatcher (``clusterctl get ...``).

``main(argv)`` gets ``[global options..., VERB, args...]`` from ``clusterctl.cli``. Options given
before the verb (``--kubeconfig``, ``-n``, ``--context``) are moved after it so each verb's parser
sees them. Each verb family module exposes ``add_parser(sub, parents)`` and sets ``func``: an
``async def run(args, session) -> int`` (or a plain ``run_local(args) -> int`` for verbs that need
no cluster, like ``completion``). Errors from the server become kubectl's one line —
``Error from server (NotFound): pods "x" not found`` — and exit code 1.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

import aiohttp

from clusterctl.client.errors import ApiError, ClientError

#: verb family modules, in help order
FAMILIES = ("get", "describe", "apply", "workloads", "rollout", "nodes", "metadata", "pods", "info")


#: the list positionals a verb may have, filled in this order by stray words (see ``main``)
POSITIONAL_LISTS = ("args", "resources", "what", "nodes", "command")


def common_parent() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("cluster options")
    g.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
    g.add_argument("--context", help="kubeconfig context to use")
    g.add_argument("-n", "--namespace", help="namespace (default: the context's, else 'default')")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterctl", description="kubectl-style verbs")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    parents = [common_parent()]
    for fam in FAMILIES:
        importlib.import_module(f"clusterctl.kubectl.{fam}").add_parser(sub, parents)
    return parser


def _reorder(argv: list[str]) -> list[str]:
    """Move global options that precede the verb to just after it."""
    leading: list[str] = []
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        leading.append(argv[i])
        if argv[i] in ("--kubeconfig", "-n", "--namespace", "--context") and i + 1 < len(argv):
            leading.append(argv[i + 1])
            i += 1
        i += 1
    if i >= len(argv):
        return argv
    return [argv[i], *leading, *argv[i + 1:]]


def server_error_line(exc: ApiError) -> str:
    if exc.code and exc.api_message:
        return f"Error from server ({exc.reason or exc.code}): {exc.api_message}"
    return f"error: {exc}"


def main(argv: list[str]) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(_reorder(list(argv)))
    if extra:
        # argparse stops filling a nargs="*"/"+" positional at the first option; kubectl allows
        # `label deploy web -n demo tier=front`: give the later words to that positional.
        stray = [w for w in extra if w.startswith("-") and w != "-"]
        target = next((n for n in POSITIONAL_LISTS if isinstance(getattr(args, n, None), list)), None)
        if stray or target is None:
            parser.parse_args(_reorder(list(argv)))  # reports the unknown arguments and exits 2
        getattr(args, target).extend(extra)
    if not getattr(args, "verb", None):
        parser.print_help()
        return 2
    if getattr(args, "run_local", None):
        return int(args.run_local(args) or 0)
    try:
        return int(asyncio.run(_run(args)) or 0)
    except ApiError as exc:
        print(server_error_line(exc), file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        # the few requests verbs send through the client's session directly (tables, watch, logs -f, exec)
        server = getattr(args, "_server", "the server")
        if isinstance(exc, aiohttp.ClientConnectorError):
            print(f"The connection to the server {exc.host}:{exc.port} was refused - did you specify the right host or port?", file=sys.stderr)
        else:
            print(f"error: talking to {server}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1


async def _run(args: argparse.Namespace) -> int:
    from clusterctl.kubectl.session import Session
    async with Session(args) as s:
        return await args.func(args, s)
