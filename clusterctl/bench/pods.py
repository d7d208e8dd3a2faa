"""``clusterctl bench pods --pods 100 --json``: create→Running latency for a burst of pods on real agents.

Starts, all on this machine and named by node: a real control plane (subprocess, tinydb store)
with the real scheduler as a component, a real registry (Debian's docker-registry on loopback)
holding a busybox ``httpd`` image built from ``busybox-static``, and ``--nodes`` real node agents
(``node-runtime --config``, one subprocess each, each with its own node name, data dir, cgroup
subtree and netns names). The image is pulled into each agent's cache before the agents start.
Then ``--pods`` bare pods are created as one burst (``--creators`` concurrent clients) and
scheduled by the scheduler; one watch records when each pod is first reported ``Running``.

Reported (one JSON object): ``running_p50_s``/``running_p99_s`` (create request sent → Running seen
on the watch). Memory is taken at the end with all pods running, for "everything the node
runtime runs except the containers' own processes" = the agent process plus its container shims
(``ccl-shim``, or util-linux ``unshare`` where no C compiler built it):
``agent_rss_mb`` = the largest per-node figure (agent + its shims on one node: what compares with
a k3s agent's per-node RSS), ``agent_rss_per_node_mb`` = each node's, ``agent_rss_sum_mb`` = summed
over all nodes; ``agent_pss_mb`` is the summed figure with proportional set sizes (shared library
pages counted once); ``agent_only_rss_mb`` / ``shims_rss_mb`` split the sum; ``shims`` counts them;
``agent_idle_rss_mb`` (summed) and ``agent_idle_rss_per_node_mb``: the agents before any pod.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from clusterctl.bench import print_result, run_in_workdir
from clusterctl.client.errors import AlreadyExists
from clusterctl.client.rest import ApiClient

NAMESPACE = "bench-pods"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clusterctl bench pods", description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--nodes", type=int, default=2)
    p.add_argument("--creators", type=int, default=32, help="concurrent pod creators")
    p.add_argument("--placement", choices=["scheduler", "direct"], default="scheduler",
                   help="scheduler: the control plane's scheduler binds the pods (default); direct: pods are created with "
                        "spec.nodeName set round-robin (measures the agents alone)")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--dir", help="keep the data directory here (default: a temporary one)")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    return p


def load_average() -> float:
    return round(os.getloadavg()[0], 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def busybox_rootfs(dest: Path) -> Path:
    busybox = shutil.which("busybox") or "/bin/busybox"
    (dest / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    for applet in ("sh", "httpd", "sleep", "cat", "echo"):
        os.symlink("busybox", dest / "bin" / applet)
    for d in ("etc", "tmp", "proc", "sys", "dev", "www"):
        (dest / d).mkdir(exist_ok=True)
    (dest / "www" / "index.html").write_text("bench\n")
    (dest / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    return dest


async def push_image(work: Path, registry: str) -> str:
    from node_runtime.images.build import ImageSpec, build_image
    from node_runtime.images.build import push_image as push
    from node_runtime.images.registry import RegistryClient, RegistryPolicy
    name = f"{registry}/bench-web:v1"
    built = build_image(busybox_rootfs(work / "rootfs"), ImageSpec(cmd=["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]))
    async with RegistryClient(RegistryPolicy()) as client:
        await push(built, name, client)
    return name


async def prepull(data_dir: Path, image: str, registry: str) -> None:
    from node_runtime.images.registry import RegistryClient, RegistryPolicy
    from node_runtime.images.store import ImageStore
    async with RegistryClient(RegistryPolicy(allowed=frozenset({registry}))) as client:
        await ImageStore(data_dir / "images", client).ensure(image)


SHIM_NAMES = ("ccl-shim", "unshare")


def agent_tree_memory(pid: int) -> tuple[int, int, int, int]:
    """(agent RSS, shims RSS, agent+shims PSS, number of shims) for one agent process."""
    agent = psutil.Process(pid)
    rss = agent.memory_info().rss
    try:
        pss = agent.memory_full_info().pss
    except (psutil.AccessDenied, AttributeError):
        pss = rss
    shim_rss = 0
    shims = 0
    for child in agent.children(recursive=False):
        try:
            if child.name() not in SHIM_NAMES:
                continue
            shims += 1
            shim_rss += child.memory_info().rss
            try:
                pss += child.memory_full_info().pss
            except (psutil.AccessDenied, AttributeError):
                pss += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return rss, shim_rss, pss, shims


async def run_bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from clusterctl.api.testing import start_control_plane
    from node_runtime.harness import AgentProcess, agent_config
    from node_runtime.images.registry_process import start_registry

    registry = start_registry(work / "registry")
    components = ["clusterctl.scheduler.scheduler:scheduler_component"] if args.placement == "scheduler" else []
    cp = start_control_plane(work / "cp", extra={"log_level": "WARNING", "components": components},
                             store={"backend": "tinydb"})
    from node_runtime.harness import wait_serving
    wait_serving(cp)
    agents: list[AgentProcess] = []
    tag = os.urandom(3).hex()
    nodes = [f"bench-{tag}-{i}" for i in range(args.nodes)]
    timings = {"lease_renew": 10.0, "status_update": 10.0}
    try:
        image = await push_image(work, registry.address)
        for node in nodes:
            data = work / node
            await prepull(data, image, registry.address)
            cfg = agent_config(cp, registry.address, data, node, timings=timings)
            agents.append(AgentProcess(cfg).start())
        async with ApiClient.from_kubeconfig(str(cp.kubeconfig), max_connections=args.creators + 8) as client:
            await wait_nodes_ready(client, nodes, timeout=60)
            try:
                await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
            except AlreadyExists:
                pass
            await asyncio.sleep(1.0)  # the scheduler's node cache catches up
            idle = [agent_tree_memory(a.pid) for a in agents]
            procs = [psutil.Process(a.pid) for a in agents] + [psutil.Process(cp.process.pid)]  # type: ignore[union-attr]
            cpu0 = [sum(p.cpu_times()[:2]) for p in procs]
            result = await measure(client, args, image, nodes)
            cpu1 = [sum(p.cpu_times()[:2]) for p in procs]
            mem = [agent_tree_memory(a.pid) for a in agents]
            await cleanup(client, args)
    finally:
        for a in agents:
            a.stop()
        # anything left (a failed run): stop containers and remove the agents' cgroups and netns
        for node in nodes:
            await _leftovers(work / node, node)
        cp.stop()
        registry.stop()
    lat = result["latencies"]
    agent_rss = sum(m[0] for m in mem)
    shim_rss = sum(m[1] for m in mem)
    per_node = [round((m[0] + m[1]) / 2**20, 1) for m in mem]
    return {
        "pods": args.pods,
        "nodes": args.nodes,
        "pods_running": len(lat),
        "running_p50_s": round(percentile(lat, 50), 3),
        "running_p99_s": round(percentile(lat, 99), 3),
        "running_max_s": round(max(lat), 3) if lat else None,
        "bound_p50_s": round(percentile(result["bind_latencies"], 50), 3),
        "bound_p99_s": round(percentile(result["bind_latencies"], 99), 3),
        "agent_rss_mb": max(per_node) if per_node else None,
        "agent_rss_per_node_mb": per_node,
        "agent_rss_sum_mb": round((agent_rss + shim_rss) / 2**20, 1),
        "agent_only_rss_mb": round(agent_rss / 2**20, 1),
        "shims_rss_mb": round(shim_rss / 2**20, 1),
        "agent_pss_mb": round(sum(m[2] for m in mem) / 2**20, 1),
        "agent_idle_rss_mb": round(sum(m[0] for m in idle) / 2**20, 1),
        "agent_idle_rss_per_node_mb": [round(m[0] / 2**20, 1) for m in idle],
        "shims": sum(m[3] for m in mem),
        "create_all_s": round(result["created_s"], 2),
        "agent_cpu_s": round(sum(cpu1[:-1]) - sum(cpu0[:-1]), 2),
        "control_plane_cpu_s": round(cpu1[-1] - cpu0[-1], 2),
        "placement": "scheduler (control-plane component)" if args.placement == "scheduler" else "direct (spec.nodeName round-robin)",
        "creators": args.creators,
        "load_avg_1m": load_average(),
        "cpus": os.cpu_count(),
    }


async def wait_nodes_ready(client: ApiClient, nodes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = (await client.list("nodes"))["items"]
        ready = {n["metadata"]["name"] for n in items
                 if any(c["type"] == "Ready" and c["status"] == "True" for c in (n.get("status") or {}).get("conditions") or [])}
        if set(nodes) <= ready:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"nodes {nodes} not Ready within {timeout}s")


async def measure(client: ApiClient, args: argparse.Namespace, image: str, nodes: list[str]) -> dict[str, Any]:
    sent: dict[str, float] = {}
    running: dict[str, float] = {}
    bound: dict[str, float] = {}
    all_running = asyncio.Event()
    listing = await client.list("pods", namespace=NAMESPACE)
    rv = listing["metadata"].get("resourceVersion")

    async def watch() -> None:
        async for _etype, pod in client.watch("pods", namespace=NAMESPACE, resource_version=rv):
            name = pod["metadata"]["name"]
            if (pod.get("spec") or {}).get("nodeName") and name not in bound:
                bound[name] = time.monotonic()
            if (pod.get("status") or {}).get("phase") == "Running" and name not in running:
                running[name] = time.monotonic()
                if len(running) >= args.pods:
                    all_running.set()

    watcher = asyncio.create_task(watch())
    sem = asyncio.Semaphore(args.creators)

    async def create(i: int) -> None:
        name = f"web-{i:04d}"
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": "bench"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "web", "image": image, "imagePullPolicy": "IfNotPresent",
                                         "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}}}]}}
        if args.placement == "direct":
            body["spec"]["nodeName"] = nodes[i % len(nodes)]
        async with sem:
            sent[name] = time.monotonic()
            await client.create(body)

    t0 = time.monotonic()
    await asyncio.gather(*(create(i) for i in range(args.pods)))
    created_s = time.monotonic() - t0
    try:
        await asyncio.wait_for(all_running.wait(), args.timeout)
    except asyncio.TimeoutError:
        pass
    watcher.cancel()
    await asyncio.gather(watcher, return_exceptions=True)
    return {"created_s": created_s, "latencies": [running[n] - sent[n] for n in running if n in sent],
            "bind_latencies": [bound[n] - sent[n] for n in bound if n in sent]}


async def cleanup(client: ApiClient, args: argparse.Namespace) -> None:
    await asyncio.gather(*(client.delete("pods", f"web-{i:04d}", namespace=NAMESPACE) for i in range(args.pods)), return_exceptions=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (await client.list("pods", namespace=NAMESPACE))["items"]:
        await asyncio.sleep(0.5)


async def _leftovers(data_dir: Path, node: str) -> None:
    from node_runtime.harness import _unmount_under
    from node_runtime.runtime.process import ProcessRuntime
    rt = ProcessRuntime(node_name=node, state_dir=data_dir / "state")
    for s in rt.adopt():
        rt.kill(s.id)
        await rt.remove(s.id)
    rt.cgroups.cleanup()
    for ns in Path("/run/netns").glob(f"clusterctl-{node}-*"):
        subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
    _unmount_under(data_dir)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    result = run_in_workdir(args.dir, "bench-pods-", lambda work: run_bench(args, work))
    print_result(result, as_json=args.json)
    return 0 if result["pods_running"] == args.pods else 1
