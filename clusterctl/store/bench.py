"""Store-level micro benchmark: what one backend does without the API server on top.

``measure_store`` drives an open store with ``objects`` pod-shaped values from 16 concurrent
writers (creates, then updates), reads, a full list, and watch delivery to 100 watchers;
``measure_recovery`` times a restart. ``clusterctl bench api`` (the API's benchmark) owns the
end-to-end figures; these isolate the store's share of them. Keys follow the API's layout.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from typing import Callable

from clusterctl.store.base import Store

PODS = "/registry/core/pods/"


def pod_value(i: int, generation: int = 1) -> dict:
    """A pod about the size the API stores (~1.3 KB of JSON)."""
    name = f"bench-{i:06d}"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench", "uid": f"00000000-0000-4000-8000-{i:012d}",
                     "labels": {"app": "bench", "shard": str(i % 16)}, "generation": generation,
                     "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {"note": "x" * 200}},
        "spec": {"containers": [{"name": "main", "image": "registry.local/bench:1", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                                 "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                 "env": [{"name": f"VAR{j}", "value": f"value-{j}"} for j in range(6)]}],
                 "restartPolicy": "Always", "nodeName": f"node-{i % 8}"},
        "status": {"phase": "Running", "podIP": f"10.0.{(i // 250) % 250}.{i % 250 + 1}",
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _rss_mb() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 1e6, 1)


async def _timed_writers(count: int, writers: int, operation: Callable[[int], object]) -> tuple[list[float], float]:
    latencies: list[float] = []
    next_index = iter(range(count))

    async def writer() -> None:
        for i in next_index:
            started = time.perf_counter()
            await operation(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return latencies, time.perf_counter() - started


async def measure_store(store: Store, objects: int = 10_000, *, writers: int = 16, watchers: int = 100,
                        watch_writes: int = 500) -> dict:
    """Figures for one started, empty store (the keys it writes live under ``/registry/core/pods/bench/``)."""
    prefix = PODS + "bench/"
    items: dict[int, object] = {}

    async def create(i: int) -> None:
        items[i] = await store.create(f"{prefix}bench-{i:06d}", pod_value(i))

    cpu_before = time.process_time()
    create_latencies, create_elapsed = await _timed_writers(objects, writers, create)
    create_cpu = time.process_time() - cpu_before

    async def update(i: int) -> None:
        items[i] = await store.update(f"{prefix}bench-{i:06d}", pod_value(i, 2),
                                      expected_revision=items[i].mod_revision)

    update_latencies, update_elapsed = await _timed_writers(objects, writers, update)

    get_latencies = []
    for i in range(0, objects, max(1, objects // 2000)):
        started = time.perf_counter()
        await store.get(f"{prefix}bench-{i:06d}")
        get_latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    listed = await store.list(prefix)
    list_all_s = time.perf_counter() - started
    assert len(listed.items) == objects, f"listed {len(listed.items)} of {objects}"

    watch_latencies = await _watch_delivery(store, prefix, watchers, watch_writes)
    return {
        "objects": objects,
        "writers": writers,
        "create_p50_ms": round(_percentile(create_latencies, 0.5) * 1e3, 2),
        "create_p99_ms": round(_percentile(create_latencies, 0.99) * 1e3, 2),
        "update_p50_ms": round(_percentile(update_latencies, 0.5) * 1e3, 2),
        "update_p99_ms": round(_percentile(update_latencies, 0.99) * 1e3, 2),
        "get_p99_ms": round(_percentile(get_latencies, 0.99) * 1e3, 3),
        "list_all_s": round(list_all_s, 4),
        "watch_p99_ms": round(_percentile(watch_latencies, 0.99) * 1e3, 2),
        "durable_writes_per_s": round(objects / create_elapsed),
        "durable_updates_per_s": round(objects / update_elapsed),
        # CPU this process spent per create: comparable across runs on a busy machine
        "create_cpu_us": round(create_cpu / objects * 1e6, 1),
        "rss_mb": _rss_mb(),
    }


async def _watch_delivery(store: Store, prefix: str, watchers: int, writes: int) -> list[float]:
    """Latency from a write's start to its event reaching each of ``watchers`` watchers."""
    sent: dict[str, float] = {}
    latencies: list[float] = []
    after = store.revision
    watch_prefix = prefix + "watched-"

    async def watcher() -> None:
        seen = 0
        async for event in store.watch(watch_prefix, after_revision=after):
            latencies.append(time.perf_counter() - sent[event.key])
            seen += 1
            if seen == writes:
                return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.sleep(0.2)  # let every watch subscribe (etcd: open its stream)
    for i in range(writes):
        key = f"{watch_prefix}{i:06d}"
        sent[key] = time.perf_counter()
        await store.create(key, pod_value(i))
        if i % 10 == 9:
            await asyncio.sleep(0.005)  # a steady stream, not one burst
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies


async def measure_recovery(open_started: Callable[[], "asyncio.Future[Store]"]) -> float:
    """Seconds for ``await open_started()`` (construct + start) to bring a store back."""
    started = time.perf_counter()
    store = await open_started()
    elapsed = time.perf_counter() - started
    await store.close()
    return round(elapsed, 3)


async def measure_tinydb(data_dir: str | os.PathLike, objects: int = 10_000) -> dict:
    """``measure_store`` on a fresh tinydb store, plus recovery time from its log and snapshot."""
    from clusterctl.store.tinydb_store import TinyDBStore

    store = TinyDBStore(data_dir, snapshot_on_close=False)
    await store.start()
    try:
        figures = await measure_store(store, objects)
        figures["commit_batches"] = store.commit_batches
    finally:
        await store.close()

    async def reopen() -> Store:
        reopened = TinyDBStore(data_dir)
        await reopened.start()
        return reopened

    figures["recovery_s"] = await measure_recovery(reopen)
    figures["backend"] = "tinydb"
    return figures


async def measure_etcd(endpoint: str, objects: int = 10_000, tls: dict | None = None) -> dict:
    """``measure_store`` on an etcd at ``endpoint`` (under a fresh key prefix); ``tls``: the store's
    TLS options (``LocalEtcd.store_options()``)."""
    from clusterctl.store.etcd_store import EtcdStore

    store = EtcdStore([endpoint], prefix=f"/bench-{os.getpid()}-{int(time.time())}", **(tls or {}))
    await store.start()
    try:
        figures = await measure_store(store, objects)
    finally:
        await store.close()
    figures["backend"] = "etcd"
    return figures


if __name__ == "__main__":  # python -m clusterctl.store.bench [tinydb|etcd] [OBJECTS]
    import json
    import sys
    import tempfile

    from clusterctl.store.etcd_process import LocalEtcd

    backend = sys.argv[1] if len(sys.argv) > 1 else "tinydb"
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    with tempfile.TemporaryDirectory() as scratch:
        if backend == "tinydb":
            result = asyncio.run(measure_tinydb(scratch, count))
        else:
            with LocalEtcd(scratch) as etcd:
                result = asyncio.run(measure_etcd(etcd.endpoint, count, etcd.store_options()))
    print(json.dumps(result))
