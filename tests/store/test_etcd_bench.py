"""The etcd store-level create benchmark runs and reports what it claims (small run, real etcd)."""

from __future__ import annotations

from clusterctl.store.etcd_bench import measure


async def test_etcd_create_bench_reports_rates_cpu_and_requests(etcd_server):
    assert etcd_server.process is not None
    result = await measure(etcd_server.endpoint, etcd_server.process.pid, creates=60, writers=4,
                           tls=etcd_server.store_options())
    assert result["creates"] == 60 and result["creates_per_s"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    assert result["client_cpu_ms_per_create"] > 0 and result["etcd_cpu_ms_per_create"] > 0
    # namespace GET + PriorityClass LIST + create txn: 3 calls, fewer on the wire once reads merge
    assert 1 <= result["etcd_requests_per_create"] <= 3
