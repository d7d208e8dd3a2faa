"""``clusterctl bench scheduler --nodes 1000 --pods 10000 --json``: pods bound per second on hollow nodes.

Starts a real control plane (``clusterctl control-plane`` in a subprocess, via
``clusterctl.api.testing``) with the scheduler as one of its components — by default
``scheduler_process_component`` (a supervised child process of the control plane); ``--scheduler
inprocess`` runs it inside the API server process, ``--scheduler external`` starts it from the
bench — registers ``--nodes`` hollow nodes in one simulator subprocess, waits for them to be
Ready, then creates ``--pods`` pods from ``--creators`` concurrent clients while one watch records
when each pod first carries a ``spec.nodeName``. Reported (one JSON object):
- ``pods_per_s``: pods / (last bind seen − first create sent);
- ``bind_p50_s``/``bind_p99_s``: per pod, create request sent → binding seen on the watch
  (so the create's own latency is included);
- ``cpu_s``/``rss_mb``: CPU seconds (user+system) the control plane (API server + scheduler)
  spent during the pod phase (first create → last binding), and their summed peak RSS, via
  psutil; ``apiserver_*`` and ``scheduler_*`` split them when the scheduler is its own process;
  ``sim_cpu_s`` is the hollow nodes' share and ``bench_cpu_s`` the bench's own (creators and
  watch), neither part of the control plane;
- what trails the bindings, waited for up to ``--events-settle`` seconds each: ``pods_running``
  and ``running_done_s`` (every pod reported Running by its hollow node, whose status writes
  are paced), ``scheduled_events_recorded`` and ``events_done_s`` (the scheduler's Scheduled
  Events, posted from a bounded queue behind the bindings; fewer than ``pods`` means dropped),
  and ``cpu_until_settled_s``, the control plane's CPU until both were done (lease renewals of
  the idle nodes included).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

from clusterctl.bench import print_result, run_in_workdir
from clusterctl.client.errors import AlreadyExists
from clusterctl.client.rest import ApiClient

NAMESPACE = "bench"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl bench scheduler", description=__doc__.splitlines()[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--pods", type=int, default=10000)
    p.add_argument("--creators", type=int, default=32, help="concurrent pod creators")
    p.add_argument("--scheduler", choices=["subprocess", "inprocess", "external"], default="subprocess",
                   help="subprocess: the control plane's scheduler_process_component (a supervised child process, default); "
                        "inprocess: scheduler_component inside the API server process; external: started by the bench")
    p.add_argument("--percentage-of-nodes-to-score", type=int, default=0, help="0 = adaptive, as kube-scheduler")
    p.add_argument("--no-scheduled-events", action="store_true", help="skip the per-pod Scheduled Event")
    p.add_argument("--events-settle", type=float, default=120.0,
                   help="after the last binding, wait up to this long for every pod Running, then as long for every Scheduled Event")
    p.add_argument("--pod-cpu", default="10m")
    p.add_argument("--pod-memory", default="16Mi")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--dir", help="keep the data directory here (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    return p


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


class ProcessMeter:
    """CPU seconds since ``reset()`` and peak RSS of some processes, sampled in the background."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.cpu0: dict[str, float] = {}
        self.peak_rss: dict[str, int] = {name: 0 for name in pids}

    def _cpu(self, proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return t.user + t.system

    def reset(self) -> None:
        self.cpu0 = {name: self._cpu(p) for name, p in self.procs.items()}

    def sample(self) -> None:
        for name, proc in self.procs.items():
            try:
                self.peak_rss[name] = max(self.peak_rss[name], proc.memory_info().rss)
            except psutil.Error:
                pass

    def cpu(self) -> dict[str, float]:
        return {name: self._cpu(p) - self.cpu0.get(name, 0.0) for name, p in self.procs.items()}

    async def run(self, every: float = 0.25) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)


async def _child_pid(parent: int, timeout: float = 20.0) -> int:
    """The scheduler child the control plane forked."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for child in psutil.Process(parent).children():
            if "clusterctl.scheduler.cli" in " ".join(child.cmdline()):
                return child.pid
        await asyncio.sleep(0.1)
    raise TimeoutError("the control plane started no scheduler process")


def pod_manifest(i: int, cpu: str, memory: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "namespace": NAMESPACE, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}


async def wait_nodes_ready(client: ApiClient, count: int, timeout: float) -> float:
    started = time.monotonic()
    while True:
        nodes = (await client.list("nodes", limit=500))["items"]
        ready = sum(1 for n in nodes for c in (n.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready" and c.get("status") == "True")
        if ready >= count:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"only {ready}/{count} hollow nodes Ready after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def measure(client: ApiClient, args: argparse.Namespace, meter: ProcessMeter) -> dict[str, Any]:
    try:
        await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    except AlreadyExists:
        pass
    rv = (await client.list("pods", namespace=NAMESPACE, limit=1))["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    bound: dict[str, float] = {}
    running: dict[str, float] = {}
    all_bound = asyncio.Event()
    all_running = asyncio.Event()

    async def watch_pods() -> None:
        """When each pod first shows a node (bound), and when the hollow node reports it Running."""
        resume = rv
        while not all_running.is_set():
            stream = client.watch("pods", namespace=NAMESPACE, resource_version=resume, timeout_seconds=int(args.timeout))
            async for etype, pod in stream:
                if etype == "DELETED" or not (pod.get("spec") or {}).get("nodeName"):
                    continue
                name = pod["metadata"]["name"]
                if name not in bound:
                    bound[name] = time.monotonic()
                    if len(bound) >= args.pods:
                        all_bound.set()
                if name not in running and (pod.get("status") or {}).get("phase") == "Running":
                    running[name] = time.monotonic()
                    if len(running) >= args.pods:
                        all_running.set()
                        return
            resume = stream.resource_version

    next_index = iter(range(args.pods))

    async def creator() -> None:
        for i in next_index:
            body = pod_manifest(i, args.pod_cpu, args.pod_memory)
            sent[body["metadata"]["name"]] = time.monotonic()
            await client.create(body)

    watcher = asyncio.create_task(watch_pods())
    sampler = asyncio.create_task(meter.run())
    meter.reset()
    own0 = time.process_time()
    t0 = time.monotonic()
    await asyncio.gather(*(creator() for _ in range(args.creators)))
    created_s = time.monotonic() - t0
    try:
        await asyncio.wait_for(all_bound.wait(), args.timeout)
    except asyncio.TimeoutError:
        pass
    cpu = meter.cpu()
    cpu["bench"] = time.process_time() - own0
    meter.sample()
    sampler.cancel()
    try:  # the hollow nodes' status writes trail the bindings (paced); wait for them too
        await asyncio.wait_for(asyncio.shield(asyncio.wait({watcher}, return_when=asyncio.FIRST_COMPLETED)), args.events_settle)
    except asyncio.TimeoutError:
        pass
    watch_error = repr(watcher.exception()) if watcher.done() and not watcher.cancelled() and watcher.exception() else ""
    watcher.cancel()
    await asyncio.gather(sampler, watcher, return_exceptions=True)
    if len(running) < args.pods:  # the list is the truth when the watch fell behind or broke
        listed = await client.list("pods", namespace=NAMESPACE, field_selector="status.phase=Running", limit=2000)
        running_listed = len(listed["items"])
    else:
        running_listed = len(running)
    latencies = [bound[n] - sent[n] for n in bound if n in sent]
    last = max(bound.values()) if bound else t0
    running_done = max(running.values()) - t0 if running else float("nan")
    events = await count_scheduled_events(client, len(bound), settle=args.events_settle)
    events_done = time.monotonic()
    cpu_with_events = meter.cpu()
    return {"created_s": created_s, "duration_s": last - t0, "bound": len(bound), "latencies": latencies, "cpu": cpu,
            "events": events, "events_done_s": events_done - t0, "cpu_with_events": cpu_with_events,
            "running": running_listed, "running_done_s": running_done, "watch_error": watch_error}


async def count_scheduled_events(client: ApiClient, expected: int, *, settle: float, every: float = 2.0) -> int:
    """``Scheduled`` Events recorded for the bench's pods, polling up to ``settle`` seconds after
    the last binding for the scheduler's background event writers to catch up (events are best
    effort and posted behind the bindings: a count below ``expected`` at the end means dropped)."""
    end = time.monotonic() + settle
    while True:
        listed = await client.list("events", namespace=NAMESPACE, field_selector="reason=Scheduled", limit=2000)
        count = len(listed["items"])
        if count >= expected or time.monotonic() >= end:
            return count
        await asyncio.sleep(every)


async def run_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from clusterctl.api.testing import start_control_plane

    extra: dict[str, Any] = {"log_level": "WARNING"}
    extra["components"] = {"inprocess": ["clusterctl.scheduler.scheduler:scheduler_component"],
                           "subprocess": ["clusterctl.scheduler.scheduler:scheduler_process_component"],
                           "external": []}[args.scheduler]
    settings = {"percentage_of_nodes_to_score": args.percentage_of_nodes_to_score, "record_scheduled_events": not args.no_scheduled_events}
    (work / "cp").mkdir(parents=True, exist_ok=True)
    (work / "cp" / "scheduler.yaml").write_text(yaml.safe_dump(settings))
    cp = start_control_plane(work / "cp", extra=extra, store={"backend": "tinydb"})
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        pids: dict[str, int] = {"apiserver": cp.process.pid}  # type: ignore[union-attr]
        if args.scheduler == "subprocess":
            pids["scheduler"] = await _child_pid(pids["apiserver"])
        if args.scheduler == "external":
            cmd = [sys.executable, "-m", "clusterctl.scheduler.cli", "--kubeconfig", str(cp.kubeconfig),
                   "--config", str(work / "cp" / "scheduler.yaml")]
            procs.append(subprocess.Popen(cmd, stdout=open(work / "scheduler.log", "wb"), stderr=subprocess.STDOUT, env=env))
            pids["scheduler"] = procs[-1].pid
        sim = subprocess.Popen([sys.executable, "-m", "clusterctl", "sim", "nodes", str(args.nodes), "--kubeconfig", str(cp.kubeconfig),
                                "--concurrency", "48", "--renew-interval", "10"],
                               stdout=open(work / "sim.log", "wb"), stderr=subprocess.STDOUT, env=env)
        procs.append(sim)
        pids["sim"] = sim.pid
        meter = ProcessMeter(pids)
        async with ApiClient.from_kubeconfig(str(cp.kubeconfig), max_connections=args.creators + 8) as client:
            nodes_ready_s = await wait_nodes_ready(client, args.nodes, timeout=max(120.0, args.nodes * 0.2))
            await asyncio.sleep(1.0)  # let the scheduler's node informer catch up with the last registrations
            result = await measure(client, args, meter)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        cp.stop()
    cpu = result["cpu"]
    control_plane = [name for name in ("apiserver", "scheduler") if name in pids]
    lat = result["latencies"]
    out: dict[str, Any] = {
        "nodes": args.nodes,
        "pods": args.pods,
        "pods_bound": result["bound"],
        "pods_per_s": round(result["bound"] / result["duration_s"], 1) if result["duration_s"] > 0 else 0.0,
        "bind_p50_s": round(percentile(lat, 50), 3),
        "bind_p99_s": round(percentile(lat, 99), 3),
        "cpu_s": round(sum(cpu[n] for n in control_plane), 2),
        "rss_mb": round(sum(meter.peak_rss[n] for n in control_plane) / 2**20, 1),
        "scheduler": args.scheduler,
        "create_all_s": round(result["created_s"], 2),
        "duration_s": round(result["duration_s"], 2),
        "nodes_ready_s": round(nodes_ready_s, 2),
        "sim_cpu_s": round(cpu["sim"], 2),
        "bench_cpu_s": round(cpu["bench"], 2),
        "creators": args.creators,
        "percentage_of_nodes_to_score": args.percentage_of_nodes_to_score,
        "scheduled_events": not args.no_scheduled_events,
        "pods_running": result["running"],
        "running_done_s": round(result["running_done_s"], 2),
        **({"watch_error": result["watch_error"]} if result["watch_error"] else {}),
        "scheduled_events_recorded": result["events"],
        "events_done_s": round(result["events_done_s"], 2),
        "cpu_until_settled_s": round(sum(result["cpu_with_events"][n] for n in control_plane), 2),
    }
    if "scheduler" in pids:
        out.update(apiserver_cpu_s=round(cpu["apiserver"], 2), scheduler_cpu_s=round(cpu["scheduler"], 2),
                   apiserver_rss_mb=round(meter.peak_rss["apiserver"] / 2**20, 1), scheduler_rss_mb=round(meter.peak_rss["scheduler"] / 2**20, 1))
    return out


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = run_in_workdir(args.dir, "bench-scheduler-", lambda work: run_bench(args, work))
    print_result(result, as_json=args.json)
    return 0 if result["pods_bound"] == args.pods else 1
