"""``clusterctl bench api`` end to end on a small scale: one JSON object with every figure the issue
names, the durable-write rate from wrk's acknowledged creates, and wrk's report parsed honestly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clusterctl.bench.api import parse_wrk

KEYS = {"backend", "objects", "create_p50_ms", "create_p99_ms", "update_p99_ms", "get_p99_ms", "list_all_s", "watch_p99_ms",
        "durable_writes_per_s", "recovery_s", "rss_mb", "populate_writes_per_s", "durable_writes_client", "targets_met"}


@pytest.mark.timeout(240)
def test_small_bench_prints_every_figure_and_counts_wrk_writes():
    out = subprocess.run([sys.executable, "-m", "clusterctl", "bench", "api", "--objects", "300", "--watchers", "5",
                          "--watch-updates", "10", "--samples", "20", "--write-seconds", "1", "--json"],
                         capture_output=True, text=True, timeout=220)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert result["list_items"] >= 300 and result["recovered_ok"] is True
    assert result["durable_writes_client"].startswith("wrk (16 connections")
    assert result["durable_writes_acknowledged"] > 0
    assert result["durable_writes_per_s"] == pytest.approx(result["durable_writes_acknowledged"], rel=0.5)  # over ~1 s


def test_parse_wrk_counts_failures():
    report = """Running 5s test @ https://127.0.0.1:1/api/v1/namespaces/bench/pods
  1 threads and 16 connections
  12034 requests in 5.00s, 20.1MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   2406.80
"""
    assert parse_wrk(report) == {"requests": 12034, "seconds": 5.0, "non_2xx": 7, "socket_errors": 3}
    with pytest.raises(RuntimeError, match="no request count"):
        parse_wrk("unable to connect")
