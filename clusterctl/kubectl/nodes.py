"""``cordon``, ``uncordon``, ``drain`` and ``top``: node maintenance and usage.

``drain`` is kubectl's: cordon, then evict every pod on the node through the Eviction API (so
PodDisruptionBudgets are the server's to enforce; a 429 is retried every
``--eviction-retry-interval`` seconds until ``--timeout``), skipping DaemonSet pods with
``--ignore-daemonsets`` and mirror pods, refusing unmanaged pods without ``--force`` and
emptyDir pods without ``--delete-emptydir-data``; then waits for the evicted pods to be gone.
``top nodes`` reads the usage the node runtime publishes on each Node (``clusterctl.io/usage``);
``top pods`` asks the node's ``/stats/summary`` through the API server's node proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging

from clusterctl.client.errors import ApiError, NotFound, TooManyRequests
from clusterctl.client.quantity import parse_quantity
from clusterctl.errors import UsageError
from clusterctl.kubectl.printers import format_rows
from clusterctl.kubectl.session import Session

log = logging.getLogger(__name__)

USAGE_ANNOTATION = "clusterctl.io/usage"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
FMT = argparse.RawDescriptionHelpFormatter


def add_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    for verb, doc in (("cordon", "mark a node unschedulable"), ("uncordon", "mark a node schedulable")):
        p = sub.add_parser(verb, parents=parents, help=doc, formatter_class=FMT,
                           epilog=f"examples:\n  clusterctl {verb} node-1\n  clusterctl {verb} -l pool=batch\n")
        p.add_argument("nodes", nargs="*")
        p.add_argument("-l", "--selector")
        p.set_defaults(func=run_cordon, unschedulable=verb == "cordon")
    d = sub.add_parser("drain", parents=parents, help="cordon a node and evict its pods", formatter_class=FMT,
                       epilog="examples:\n  clusterctl drain node-1 --ignore-daemonsets\n"
                              "  clusterctl drain node-1 --ignore-daemonsets --delete-emptydir-data --timeout=120s\n")
    d.add_argument("nodes", nargs="*")
    d.add_argument("-l", "--selector")
    d.add_argument("--ignore-daemonsets", action="store_true")
    d.add_argument("--delete-emptydir-data", action="store_true")
    d.add_argument("--force", action="store_true", help="also delete pods no controller manages")
    d.add_argument("--grace-period", type=int, default=-1, help="seconds for each pod to stop (-1: the pod's own)")
    d.add_argument("--timeout", default="0", help="give up after this long (e.g. 60s, 2m; 0 = forever)")
    d.add_argument("--pod-selector", help="only evict pods matching this label selector")
    d.add_argument("--disable-eviction", action="store_true", help="delete pods instead of evicting (bypasses PDBs)")
    d.add_argument("--eviction-retry-interval", type=float, default=5.0, help=argparse.SUPPRESS)
    d.set_defaults(func=run_drain)
    t = sub.add_parser("top", parents=parents, help="CPU and memory use of nodes or pods", formatter_class=FMT,
                       epilog="examples:\n  clusterctl top nodes\n  clusterctl top pods -A\n")
    t.add_argument("what", choices=["nodes", "node", "no", "pods", "pod", "po"])
    t.add_argument("name", nargs="?")
    t.add_argument("-A", "--all-namespaces", action="store_true")
    t.add_argument("-l", "--selector")
    t.set_defaults(func=run_top)


def parse_seconds(text: str) -> float:
    text = text.strip()
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "", 1).isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    try:
        return float(text)
    except ValueError:
        raise UsageError(f"invalid duration {text!r} (e.g. 30s, 2m)") from None


async def _node_names(args: argparse.Namespace, s: Session) -> list[str]:
    if args.selector:
        return [n["metadata"]["name"] for n in (await s.client.list("nodes", label_selector=args.selector))["items"]]
    if not args.nodes:
        raise UsageError("usage: clusterctl cordon|uncordon|drain NODE... (or -l SELECTOR)")
    return list(args.nodes)


async def set_unschedulable(s: Session, name: str, value: bool) -> str:
    node = await s.client.get("nodes", name)
    if bool((node.get("spec") or {}).get("unschedulable")) == value:
        return f"node/{name} already {'cordoned' if value else 'uncordoned'}"
    await s.client.patch("nodes", name, {"spec": {"unschedulable": value or None}})
    return f"node/{name} {'cordoned' if value else 'uncordoned'}"


async def run_cordon(args: argparse.Namespace, s: Session) -> int:
    for name in await _node_names(args, s):
        print(await set_unschedulable(s, name, args.unschedulable))
    return 0


def _controller(pod: dict) -> dict | None:
    return next((o for o in pod["metadata"].get("ownerReferences") or [] if o.get("controller")), None)


def classify(pods: list[dict], args: argparse.Namespace) -> tuple[list[dict], list[str], list[str]]:
    """(pods to evict, warnings, errors) — kubectl's drain filters."""
    evict, warnings, errors = [], [], []
    ds, unmanaged, local = [], [], []
    for pod in pods:
        meta = pod["metadata"]
        ref = f"{meta['namespace']}/{meta['name']}"
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            evict.append(pod)
            continue
        if MIRROR_ANNOTATION in (meta.get("annotations") or {}):
            continue
        ctrl = _controller(pod)
        if ctrl and ctrl.get("kind") == "DaemonSet":
            ds.append(ref)
            continue
        if ctrl is None and not args.force:
            unmanaged.append(ref)
            continue
        if any("emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or []) and not args.delete_emptydir_data:
            local.append(ref)
            continue
        if ctrl is None:
            warnings.append(f"deleting Pods that declare no controller: {ref}")
        evict.append(pod)
    if ds:
        (warnings if args.ignore_daemonsets else errors).append(
            f"ignoring DaemonSet-managed Pods: {', '.join(ds)}" if args.ignore_daemonsets
            else f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {', '.join(ds)}")
    if unmanaged:
        errors.append(f"cannot delete Pods that declare no controller (use --force to override): {', '.join(unmanaged)}")
    if local:
        errors.append(f"cannot delete Pods with local storage (use --delete-emptydir-data to override): {', '.join(local)}")
    return evict, warnings, errors


async def _evict_one(s: Session, pod: dict, args: argparse.Namespace, deadline: float | None) -> None:
    ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    grace = None if args.grace_period < 0 else args.grace_period
    loop = asyncio.get_running_loop()
    while True:
        try:
            if args.disable_eviction:
                await s.client.delete("pods", name, namespace=ns, grace_period_seconds=grace)
            else:
                await s.client.evict(ns, name, grace_period_seconds=grace)
            return
        except NotFound:
            return
        except TooManyRequests as exc:
            print(f"error when evicting pods/\"{name}\" -n \"{ns}\" (will retry after {args.eviction_retry_interval:g}s): {exc.api_message}", flush=True)
            if deadline is not None and loop.time() + args.eviction_retry_interval > deadline:
                raise UsageError(f"drain did not complete within the timeout: pod {ns}/{name} could not be evicted") from exc
            await asyncio.sleep(args.eviction_retry_interval)


async def _wait_deleted(s: Session, pod: dict, deadline: float | None) -> None:
    ns, name, uid = pod["metadata"]["namespace"], pod["metadata"]["name"], pod["metadata"].get("uid")
    loop = asyncio.get_running_loop()
    interval = 0.05
    while True:
        try:
            live = await s.client.get("pods", name, namespace=ns)
            if live["metadata"].get("uid") != uid:
                return
        except NotFound:
            return
        if deadline is not None and loop.time() > deadline:
            raise UsageError(f"drain did not complete within the timeout: pod {ns}/{name} is still terminating")
        await asyncio.sleep(interval)
        interval = min(interval * 2, 1.0)


async def run_drain(args: argparse.Namespace, s: Session) -> int:
    loop = asyncio.get_running_loop()
    timeout = parse_seconds(args.timeout)
    deadline = loop.time() + timeout if timeout > 0 else None
    for node in await _node_names(args, s):
        print(await set_unschedulable(s, node, True), flush=True)
        pods = (await s.client.list("pods", field_selector=f"spec.nodeName={node}", label_selector=args.pod_selector))["items"]
        evict, warnings, errors = classify(pods, args)
        if errors:
            raise UsageError(f"unable to drain node {node!r} due to error: " + "; ".join(errors) + ", continuing command...")
        for w in warnings:
            print(f"Warning: {w}")
        for pod in evict:
            print(f"evicting pod {pod['metadata']['namespace']}/{pod['metadata']['name']}", flush=True)

        async def one(pod: dict) -> None:
            await _evict_one(s, pod, args, deadline)
            await _wait_deleted(s, pod, deadline)
            print(f"pod/{pod['metadata']['name']} evicted", flush=True)

        results = await asyncio.gather(*(one(p) for p in evict), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        for f in failures:
            if isinstance(f, asyncio.CancelledError):
                raise f
        if failures:
            raise failures[0]
        print(f"node/{node} drained")
    return 0


async def node_summary(s: Session, node: str) -> dict:
    """A node's ``/stats/summary`` through the API server's node proxy (``nodes/{name}/proxy``);
    ``{}`` when the node cannot answer. Never straight from the agent: that would hand our token
    to an endpoint whose certificate we cannot check."""
    try:
        return await s.client.request("GET", f"/api/v1/nodes/{node}/proxy/stats/summary")
    except ApiError as exc:
        log.info("stats of node %s: %s", node, exc)
        return {}


def _millicores(text: str | None) -> int:
    return int(parse_quantity(text or "0") * 1000)


def _mebibytes(text: str | int | None) -> int:
    return int(parse_quantity(str(text or 0)) // (1024 * 1024))


async def run_top(args: argparse.Namespace, s: Session) -> int:
    if args.what.startswith("no"):
        nodes = (await s.client.list("nodes", label_selector=args.selector))["items"]
        if args.name:
            nodes = [n for n in nodes if n["metadata"]["name"] == args.name]
            if not nodes:
                raise NotFound({"code": 404, "reason": "NotFound", "message": f'nodes "{args.name}" not found'})
        rows = []
        for n in nodes:
            raw = (n["metadata"].get("annotations") or {}).get(USAGE_ANNOTATION)
            alloc = (n.get("status") or {}).get("allocatable") or {}
            if not raw:
                rows.append([n["metadata"]["name"], "<unknown>", "<unknown>", "<unknown>", "<unknown>"])
                continue
            usage = json.loads(raw)
            cpu, mem = _millicores(usage.get("cpu")), _mebibytes(usage.get("memory"))
            cap_cpu, cap_mem = _millicores(alloc.get("cpu")), _mebibytes(alloc.get("memory"))
            rows.append([n["metadata"]["name"], f"{cpu}m", f"{cpu * 100 // cap_cpu if cap_cpu else 0}%",
                         f"{mem}Mi", f"{mem * 100 // cap_mem if cap_mem else 0}%"])
        if rows and all(r[1] == "<unknown>" for r in rows):
            raise UsageError("Metrics not available for nodes: no node runtime has published usage yet (the clusterctl.io/usage annotation); try again in a few seconds")
        print(format_rows(["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"], rows))
        return 0
    ns = s.list_namespace()
    pods = (await s.client.list("pods", namespace=ns, label_selector=args.selector))["items"]
    if args.name:
        pods = [p for p in pods if p["metadata"]["name"] == args.name]
    by_node: dict[str, dict] = {}
    rows = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") != "Running":
            continue
        if node not in by_node:
            summary = await node_summary(s, node)
            by_node[node] = {(p["podRef"]["namespace"], p["podRef"]["name"]): p for p in summary.get("pods") or []}
        stats = by_node[node].get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
        if stats is None:
            continue
        cpu = int(((stats.get("cpu") or {}).get("usageNanoCores") or 0) / 1e6)
        mem = int(((stats.get("memory") or {}).get("workingSetBytes") or 0) // (1024 * 1024))
        row = [pod["metadata"]["name"], f"{cpu}m", f"{mem}Mi"]
        if ns is None:
            row.insert(0, pod["metadata"]["namespace"])
        rows.append(row)
    if not rows:
        raise UsageError("Metrics not available for pods"
                         + ("" if pods else f" in namespace {ns or 'any'}: no running pods")
                         + (": the nodes' /stats/summary could not be reached through the API server" if pods else ""))
    header = ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    if ns is None:
        header.insert(0, "NAMESPACE")
    print(format_rows(header, rows))
    return 0
