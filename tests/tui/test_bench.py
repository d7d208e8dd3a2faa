"""``clusterctl bench tui`` runs headless and reports the latencies it promises (small, short run)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_bench_tui_reports_event_and_key_latency() -> None:
    out = subprocess.run([sys.executable, "-m", "clusterctl", "bench", "tui", "--pods", "200", "--seconds", "2", "--json"],
                         capture_output=True, text=True, timeout=170, check=True).stdout
    result = json.loads(out)
    assert result["pods"] == 200
    # the run is time-boxed (2 s of one slice of 20 pods per 0.1 s): how many slices it gets
    # through depends on the machine's load, so only "it ran" is required here
    assert result["events"] >= 20 and result["events"] % 20 == 0
    # every event reached the table, and the on-screen ones were drawn
    assert result["event_samples"] + result["offscreen_event_samples"] == result["events"]
    assert result["event_samples"] > 0
    # a key press is due every 0.25 s of the 2 s box, but one loop turn (20 events, then the
    # press and its redraw) can take most of the box on a loaded machine: at least one is sent
    # and measured (none would mean key latency is not recorded)
    assert result["key_presses"] >= 1
    for key in ("event_to_screen_p99_ms", "key_to_redraw_p99_ms"):
        assert 0 < result[key] < 10_000, key
