"""``clusterctl sim nodes N``: run N hollow nodes against a cluster until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from clusterctl.client.rest import ApiClient
from clusterctl.errors import UsageError
from clusterctl.sim.hollow import HollowCluster, HollowConfig


def _taint(text: str) -> dict[str, str]:
    # key[=value]:Effect, as kubectl taint
    kv, sep, effect = text.rpartition(":")
    if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise argparse.ArgumentTypeError(f"taint {text!r}: want key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
    key, _, value = kv.partition("=")
    return {"key": key, "value": value, "effect": effect}


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"label {text!r}: want key=value")
    return key, value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    common.add_argument("--context", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="clusterctl sim", description="simulated (hollow) nodes for tests and benchmarks", parents=[common])
    sub = parser.add_subparsers(dest="what", required=True)
    nodes = sub.add_parser("nodes", parents=[common], help="register N hollow nodes that heartbeat and report their pods Running")
    nodes.add_argument("count", type=int)
    nodes.add_argument("--prefix", default="hollow-", help="node name prefix (default hollow-)")
    nodes.add_argument("--first-index", type=int, default=0, help="number of the first node (run several simulators side by side)")
    nodes.add_argument("--ready-delay", type=float, default=0.0, metavar="S", help="seconds from bound to Running/Ready")
    nodes.add_argument("--cpu", default="4")
    nodes.add_argument("--memory", default="8Gi")
    nodes.add_argument("--pods", type=int, default=110)
    nodes.add_argument("--label", action="append", type=_label, default=[], help="node label key=value (repeatable)")
    nodes.add_argument("--taint", action="append", type=_taint, default=[], help="node taint key[=value]:Effect (repeatable)")
    nodes.add_argument("--lease-duration", type=int, default=40)
    nodes.add_argument("--renew-interval", type=float, default=10.0)
    nodes.add_argument("--concurrency", type=int, default=32, help="concurrent lease/node writes")
    nodes.add_argument("--status-writers", type=int, default=8, help="concurrent pod status writes (a coalescing FIFO)")
    nodes.add_argument("--cleanup", action="store_true", help="delete the nodes on exit")
    nodes.add_argument("-v", "--verbose", action="store_true")
    return parser


async def _run(args: argparse.Namespace) -> int:
    client = ApiClient.from_kubeconfig(getattr(args, "kubeconfig", None), context=getattr(args, "context", None),
                                       max_connections=max(8, args.concurrency + args.status_writers + 8))
    config = HollowConfig(count=args.count, prefix=args.prefix, first_index=args.first_index, ready_delay=args.ready_delay, cpu=args.cpu,
                          memory=args.memory, pods=args.pods, labels=dict(args.label), taints=args.taint, lease_duration=args.lease_duration,
                          renew_interval=args.renew_interval, write_concurrency=args.concurrency,
                          status_writers=args.status_writers)
    cluster = HollowCluster(client, config)
    task = asyncio.create_task(cluster.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        started = asyncio.create_task(cluster.started())
        done, _ = await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if started in done:
            print(f"{args.count} hollow nodes registered ({config.prefix}{config.first_index}..); Ctrl-C to stop", file=sys.stderr, flush=True)
        await task
    except asyncio.CancelledError:
        pass
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if args.cleanup:
            await cluster.delete_nodes()
        await client.close()
        print(f"hollow nodes: {cluster.stats}", file=sys.stderr, flush=True)
    if task.done() and not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    return 0


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.count < 0:
        raise UsageError("sim nodes: N must be >= 0")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    return asyncio.run(_run(args))
