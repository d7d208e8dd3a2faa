"""``clusterctl tui [--kubeconfig F] [--context C] [--readonly] [--feed FILE] [-i INVENTORY] [--view V] [--no-cluster]``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from clusterctl.client.rest import ApiClient
from clusterctl.errors import UsageError
from clusterctl.tui._kinds import resolve_alias


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl tui", description="the cluster live in the terminal (k9s-style keys; ? for help)")
    p.add_argument("--kubeconfig", default=None, help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config)")
    p.add_argument("--context", default=None)
    p.add_argument("--readonly", action="store_true", help="no writes: scale, delete, cordon are refused")
    p.add_argument("--feed", type=Path, default=None, metavar="FILE",
                   help="follow a provision/upgrade --log-json feed in the provisioning view (:feed)")
    p.add_argument("-i", "--inventory", default=None, metavar="INVENTORY",
                   help="show the inventory's machines in the Hosts view (:hosts), with facts and reachability")
    p.add_argument("--view", default=None, help="first view (po, deploy, no, overview, feed, …; default pods, or feed with --feed)")
    p.add_argument("--no-cluster", action="store_true", help="only the provisioning feed; do not connect to an API server")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    view = resolve_alias(args.view) if args.view else ("feed" if args.feed else "pods")
    if view is None or view == "rollout" or (view == "hosts" and not args.inventory):
        raise UsageError(f"tui: unknown --view {args.view!r}")
    from clusterctl.tui._actions import ClusterActions
    from clusterctl.tui._source import ClusterSource
    from clusterctl.tui._hosts import HostProbe
    from clusterctl.tui.app import ClusterApp

    hosts = HostProbe(args.inventory) if args.inventory else None

    if args.no_cluster:
        if view not in ("feed", "hosts"):
            view = "hosts" if hosts and not args.feed else "feed"
        app = ClusterApp(ClusterSource.static([]), feed=args.feed, start_view=view, readonly=True, context="(no cluster)",
                         hosts=hosts)
        app.run()
        return 0

    async def run() -> None:
        client = ApiClient.from_kubeconfig(args.kubeconfig, context=args.context, retries=0, request_timeout=10.0)
        try:
            app = ClusterApp(ClusterSource(client), actions=ClusterActions(client, readonly=args.readonly), readonly=args.readonly,
                             feed=args.feed, start_view=view, context=client.server, hosts=hosts)
            await app.run_async()
        finally:
            await client.close()
    asyncio.run(run())
    return 0
