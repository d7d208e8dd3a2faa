"""``clusterctl scheduler`` (or ``python -m clusterctl.scheduler.cli``): run the scheduler as its own process.

The control plane normally runs the scheduler in-process (``scheduler.control_plane_component``);
a separate process is what kube-scheduler is, and what the benchmark uses to see where CPU goes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from clusterctl.client.rest import ApiClient
from clusterctl.scheduler.scheduler import SchedulerConfig, run_scheduler


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clusterctl scheduler", description="assign nodes to pending pods")
    parser.add_argument("--kubeconfig", default=None)
    parser.add_argument("--config", default=None, help="YAML file of scheduler settings (flags given here win)")
    parser.add_argument("--scheduler-name", default=None)
    parser.add_argument("--percentage-of-nodes-to-score", type=int, default=None, help="0 = adaptive, as kube-scheduler")
    parser.add_argument("--leader-elect", action="store_true")
    parser.add_argument("--no-scheduled-events", action="store_true", help="do not post a Scheduled Event per bound pod")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


async def _run(args: argparse.Namespace) -> None:
    flags: dict[str, object] = {}
    if args.scheduler_name is not None:
        flags["scheduler_name"] = args.scheduler_name
    if args.percentage_of_nodes_to_score is not None:
        flags["percentage_of_nodes_to_score"] = args.percentage_of_nodes_to_score
    if args.leader_elect:
        flags["leader_elect"] = True
    if args.no_scheduled_events:
        flags["record_scheduled_events"] = False
    config = SchedulerConfig.load(args.config, **flags) if args.config else SchedulerConfig.from_dict(flags)
    client = ApiClient.from_kubeconfig(args.kubeconfig, max_connections=96)
    task = asyncio.create_task(run_scheduler(client, config=config))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
