"""What one API pod create costs on the etcd backend, measured at the store: ``python -m
clusterctl.store.etcd_bench [--creates N] [--writers W] [--plain] [--json]``.

Starts a throwaway local etcd (``LocalEtcd``: TLS with client certificates, as deployed; ``--plain``
for plain http on loopback, to see what TLS costs) and plays the store calls the API server makes per
pod create — GET of the namespace, LIST of PriorityClasses (admission), the create txn — from
``--writers`` concurrent writers, with one watch on the pods prefix open (the API server's watch
cache). Prints creates/s, latency, and the CPU per create of this process and of etcd (psutil),
plus the etcd requests sent per create. CPU per create is the figure that survives a loaded
machine; run a pair (this tree and another, e.g. through ``PYTHONPATH``) for before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time

import psutil

from clusterctl.store.etcd_process import LocalEtcd
from clusterctl.store.etcd_store import EtcdStore

NAMESPACE_KEY = "/registry/core/namespaces/bench"
PRIORITY_PREFIX = "/registry/scheduling.k8s.io/priorityclasses/"
PODS = "/registry/core/pods/"

#: a pod as the API server stores it after defaulting (~1 KB of JSON)
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "bench-000001", "namespace": "bench", "uid": "6f1c7b1e-0d2e-4f39-9b1c-1f5a2e0c3d4b",
                    "creationTimestamp": "2026-11-26T05:00:00Z", "labels": {"app": "bench", "shard": "1"}},
       "spec": {"containers": [{"name": "app", "image": "registry.local/bench:1.0", "command": ["/bin/app", "--serve"],
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "env": [{"name": "MODE", "value": "bench"}],
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                "terminationMessagePath": "/dev/termination-log",
                                "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "schedulerName": "default-scheduler", "priority": 0,
                "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority"},
       "status": {"phase": "Pending", "qosClass": "Burstable"}}


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


async def measure(endpoint: str, etcd_pid: int, *, creates: int, writers: int, tls: dict | None = None) -> dict:
    """``tls``: the store's TLS options (``LocalEtcd.store_options()``), none for plain http."""
    store = EtcdStore([endpoint], prefix=f"/etcd-bench-{time.time_ns()}", **(tls or {}))
    await store.start()
    try:
        await store.create(NAMESPACE_KEY, {"metadata": {"name": "bench"}})
        watched = 0
        done = asyncio.Event()

        async def watch() -> None:
            nonlocal watched
            async for _ in store.watch(PODS, after_revision=store.revision):
                watched += 1
                if watched == creates:
                    done.set()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        pending = list(range(creates))
        latencies: list[float] = []

        async def writer() -> None:
            while pending:
                i = pending.pop()
                started = time.perf_counter()
                namespace = await store.get(NAMESPACE_KEY)
                assert namespace is not None
                await store.list(PRIORITY_PREFIX)
                await store.create(f"{PODS}bench/p{i:06d}", POD)
                latencies.append(time.perf_counter() - started)

        etcd = psutil.Process(etcd_pid)
        stats = getattr(store, "stats", None)  # absent in older trees (before/after pairs)
        etcd_cpu, own_cpu, requests = sum(etcd.cpu_times()[:2]), time.process_time(), stats and stats["requests"]
        started = time.perf_counter()
        await asyncio.gather(*(writer() for _ in range(writers)))
        elapsed = time.perf_counter() - started
        await asyncio.wait_for(done.wait(), 60)
        result = {
            "creates": creates, "writers": writers, "tls": endpoint.startswith("https:"),
            "creates_per_s": round(creates / elapsed, 1),
            "p50_ms": round(_pct(latencies, 50) * 1000, 2), "p99_ms": round(_pct(latencies, 99) * 1000, 2),
            "client_cpu_ms_per_create": round((time.process_time() - own_cpu) / creates * 1000, 3),
            "etcd_cpu_ms_per_create": round((sum(etcd.cpu_times()[:2]) - etcd_cpu) / creates * 1000, 3),
            "etcd_requests_per_create": round((stats["requests"] - requests) / creates, 2) if stats else None,
            "load_average_1m": round(psutil.getloadavg()[0], 2),
        }
        watcher.cancel()
        return result
    finally:
        await store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clusterctl.store.etcd_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--creates", type=int, default=3000)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--plain", action="store_true", help="plain http on loopback instead of TLS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    data_dir = tempfile.mkdtemp(prefix="clusterctl-etcd-bench-")
    try:
        with LocalEtcd(data_dir, tls=not args.plain) as etcd:
            assert etcd.process is not None
            result = asyncio.run(measure(etcd.endpoint, etcd.process.pid, creates=args.creates, writers=args.writers,
                                         tls=etcd.store_options()))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
