"""``clusterctl bench tui --pods 1000 --json``: how fast the dashboard follows a busy cluster.

A headless ``ClusterApp`` (Textual's test driver, a 200×50 screen) on the Pods view of N pods
spread over 20 nodes; every pod changes once a second (a restart count bump, delivered in ten
slices per second through the informer exactly as watch events are). Measured:

- ``event_to_screen``: from the moment an event reaches the informer to the moment the table has
  rendered the new state (the render after the coalesced flush), for events whose row is on
  screen; events for rows scrolled out of view need no drawing and are reported apart
  (``offscreen_event_*``: event to table state updated);
- ``key_to_redraw``: from a key press (cursor down/up, alternating) to the table's next render.

Target p99 ≤ 100 ms for both with 1,000 pods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import datetime, timezone

from clusterctl.tui._source import ClusterSource
from clusterctl.tui._table import ResourceTable
from clusterctl.tui.app import ClusterApp
from clusterctl.tui.examples.fake_cluster import node, pod


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def build_objects(pods: int, nodes: int = 20) -> list[dict]:
    objs = [node(f"bench-{i}") for i in range(nodes)]
    for i in range(pods):
        objs.append(pod(f"app-{i:05d}", f"ns-{i % 5}", node_name=f"bench-{i % nodes}", ip=f"10.244.{i // 250}.{i % 250}"))
    return objs


async def run_bench(pods: int, seconds: float, rate: float, key_interval: float) -> dict:
    source = ClusterSource.static(build_objects(pods))
    app = ClusterApp(source, start_view="pods", now=lambda: datetime(2026, 11, 26, tzinfo=timezone.utc), context="bench")
    slices = 10
    async with app.run_test(size=(200, 50), headless=True) as pilot:
        await pilot.pause(0.5)
        table = app.current_widget()
        assert isinstance(table, ResourceTable) and table.row_count == pods
        app.record_latency = True
        keys = [p for p in source.list("pods")]
        keys.sort(key=lambda p: p["metadata"]["name"])
        generation = 0
        restarts: dict[str, int] = {}
        start = time.monotonic()
        next_key = start + key_interval
        tick = 1.0 / (rate * slices)
        step = 0
        events = 0
        presses = 0
        down = True
        while time.monotonic() - start < seconds:
            lo = (step % slices) * len(keys) // slices
            hi = ((step % slices) + 1) * len(keys) // slices
            for base in keys[lo:hi]:
                key = base["metadata"]["name"]
                restarts[key] = restarts.get(key, 0) + 1
                generation += 1
                status = dict(base["status"])
                status["containerStatuses"] = [{**c, "restartCount": restarts[key]} for c in status.get("containerStatuses", [])]
                source.apply("MODIFIED", {**base, "metadata": {**base["metadata"], "resourceVersion": str(generation + 1)}, "status": status})
                events += 1
            step += 1
            now = time.monotonic()
            if now >= next_key:
                table.pending_stamps.append(("key", time.monotonic()))
                await pilot.press("down" if down else "up")
                presses += 1
                down = not down
                next_key += key_interval
            target = start + step * tick
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        # settle: until every event and key press sent has been drawn (a fixed pause was
        # outlasted by a loaded machine's last flush and render), at most 30 s
        settle_until = time.monotonic() + 30
        lat = app.latencies
        while time.monotonic() < settle_until and (
                len(lat.get("event", [])) + len(lat.get("event_offscreen", [])) < events or len(lat.get("key", [])) < presses):
            await pilot.pause(0.05)
    ev = [x * 1000 for x in lat.get("event", [])]
    off = [x * 1000 for x in lat.get("event_offscreen", [])]
    ks = [x * 1000 for x in lat.get("key", [])]
    return {
        "benchmark": "tui", "pods": pods, "seconds": seconds, "change_rate_hz": rate, "events": events,
        "event_samples": len(ev), "offscreen_event_samples": len(off),
        "offscreen_event_p99_ms": round(_pct(off, 0.99), 2) if off else None, "key_presses": len(ks),
        "event_to_screen_p50_ms": round(_pct(ev, 0.5), 2), "event_to_screen_p99_ms": round(_pct(ev, 0.99), 2),
        "event_to_screen_max_ms": round(max(ev), 2) if ev else None,
        "key_to_redraw_p50_ms": round(_pct(ks, 0.5), 2), "key_to_redraw_p99_ms": round(_pct(ks, 0.99), 2),
        "key_to_redraw_max_ms": round(max(ks), 2) if ks else None,
        "event_to_screen_mean_ms": round(statistics.fmean(ev), 2) if ev else None,
        "target_p99_ms": 100,
        "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench tui", description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=1.0, help="changes per pod per second")
    p.add_argument("--key-interval", type=float, default=0.25, help="seconds between key presses")
    p.add_argument("--json", action="store_true", help="print one JSON object (the default output too)")
    args = p.parse_args(argv)
    result = asyncio.run(run_bench(args.pods, args.seconds, args.rate, args.key_interval))
    json.dump(result, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0
