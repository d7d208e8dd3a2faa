"""Dispatch ``clusterctl bench NAME`` to ``clusterctl.bench.<NAME>``."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS: dict[str, str] = {
    "provision": "provisioning: clusterctl vs ansible-core vs pyinfra on lab hosts",
    "api": "API server: latency, LIST, watch delivery, durable writes, recovery, RSS",
    "scheduler": "scheduler: pods bound per second on hollow nodes",
    "pods": "node runtime: create-to-Running latency for a burst of pods",
    "proxy": "service proxy: NodePort vs direct throughput and latency",
    "up": "clusterctl up: time until all nodes are Ready",
    "bootstrap": "inventory to a Ready cluster on lab hosts",
    "tui": "dashboard: watch-event-to-screen and key-to-redraw latency",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: clusterctl bench NAME [OPTIONS] [--json]\n\nbenchmarks:")
        for name, text in BENCHMARKS.items():
            print(f"  {name:<12}{text}")
        return 0 if argv else 2
    name = argv[0]
    if name not in BENCHMARKS:
        print(f"clusterctl bench: unknown benchmark {name!r} (known: {', '.join(BENCHMARKS)})", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(f"clusterctl.bench.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"clusterctl.bench.{name}":
            print(f"clusterctl bench: benchmark {name!r} is not built yet", file=sys.stderr)
            return 2
        raise
    return int(module.main(argv[1:]) or 0)
