"""The store micro benchmark runs on both backends and reports every figure it promises."""

from __future__ import annotations

from clusterctl.store.bench import measure_recovery, measure_store
from clusterctl.store.tinydb_store import TinyDBStore


async def test_measure_store_reports_figures(store):
    figures = await measure_store(store, objects=200, writers=4, watchers=3, watch_writes=20)
    for name in ("create_p50_ms", "create_p99_ms", "update_p99_ms", "watch_p99_ms", "durable_writes_per_s",
                 "rss_mb"):
        assert figures[name] > 0, name
    assert figures["get_p99_ms"] >= 0 and figures["list_all_s"] >= 0
    assert figures["objects"] == 200


async def test_measure_recovery_reopens_the_store(tmp_path):
    store = TinyDBStore(tmp_path)
    await store.start()
    await store.create("/registry/core/pods/default/a", {"a": 1})
    await store.close()

    async def reopen():
        again = TinyDBStore(tmp_path)
        await again.start()
        assert await again.get("/registry/core/pods/default/a") is not None
        return again
    assert 0 < await measure_recovery(reopen) < 5
