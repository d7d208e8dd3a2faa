"""``clusterctl bench up [--nodes N] [--runs R] [--json]``: time from nothing to all nodes Ready.

Each run starts a fresh ``LocalCluster`` (what ``clusterctl up`` runs: control plane, network
namespaces, N real node agents) in a temporary data directory and measures until every Node
is Ready with its InternalIP published (``ready_s``), then the time of a resume on the same
directory after a clean stop (``resume_ready_s``), and the stop itself. Prints one JSON object
(``nodes``, ``ready_s`` = the median over runs, ``runs`` with every figure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from clusterctl.local_cluster import LocalCluster, free_port


async def one_run(nodes: int, resume: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-up-") as tmp:
        port = free_port()
        cluster = LocalCluster(Path(tmp), nodes=nodes, port=port, own_registry=False)
        t0 = time.monotonic()
        try:
            await cluster.start()
            ready = time.monotonic() - t0
        finally:
            t1 = time.monotonic()
            await cluster.stop()
            stop_s = time.monotonic() - t1
        out = {"ready_s": round(ready, 3), "stop_s": round(stop_s, 3)}
        if resume:
            again = LocalCluster(Path(tmp), nodes=nodes, port=port, own_registry=False)
            t0 = time.monotonic()
            try:
                await again.start()
                out["resume_ready_s"] = round(time.monotonic() - t0, 3)
            finally:
                await again.stop()
        return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench up")
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--no-resume", action="store_true", help="skip the resume measurement")
    p.add_argument("--json", action="store_true", help="(always JSON; accepted for symmetry)")
    args = p.parse_args(argv)
    runs = []
    for i in range(args.runs):
        r = asyncio.run(one_run(args.nodes, not args.no_resume))
        print(f"run {i + 1}: {r}", file=sys.stderr, flush=True)
        runs.append(r)
    result = {"benchmark": "up", "nodes": args.nodes, "ready_s": statistics.median(r["ready_s"] for r in runs),
              "target_s": 5.0, "runs": runs}
    if not args.no_resume:
        result["resume_ready_s"] = statistics.median(r["resume_ready_s"] for r in runs)
    print(json.dumps(result))
    return 0
