"""``clusterctl bench tui`` runs headless and reports the latencies it promises (small, short run)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_tui_reports_event_and_key_latency() -> None:
    out = subprocess.run([sys.executable, "-m", "clusterctl", "bench", "tui", "--pods", "200", "--seconds", "2", "--json"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    result = json.loads(out)
    assert result["pods"] == 200
    # the run is time-boxed (2 s of one slice of 20 pods per 0.1 s): how many slices it gets
    # through depends on the machine's load, so only "it ran" is required here
    assert result["events"] >= 20 and result["events"] % 20 == 0
    # every event reached the table, and the on-screen ones were drawn
    assert result["event_samples"] + result["offscreen_event_samples"] == result["events"]
    assert result["event_samples"] > 0
    assert result["key_presses"] >= 4
    for key in ("event_to_screen_p99_ms", "key_to_redraw_p99_ms"):
        assert 0 < result[key] < 10_000, key
