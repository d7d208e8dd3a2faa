"""``clusterctl bench bootstrap [--hosts N] [--json]``: inventory → every node Ready, on lab hosts.

Brings up a throwaway lab of N hosts (h1 control plane, the rest workers), builds the wheelhouse
first (timed apart as ``wheelhouse_s``, with ``wheelhouse_cached``), then times
``clusterctl bootstrap`` from start until it returns with every worker Ready and the kubeconfig
fetched (``ready_s``: preflight, upload, venv install, CA, services, joins), and a second,
no-change run (``rerun_s``, ``rerun_changed``). Prints one JSON object; the lab is removed after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
import time
from pathlib import Path


def measure(hosts: int) -> dict:
    from clusterctl.bootstrap.cli import bootstrap_main
    from clusterctl.bootstrap.lab_inventory import snapshot_source, write_lab_inventory
    from clusterctl.bootstrap.wheelhouse import build_wheelhouse, wheelhouse_key, DEFAULT_CACHE
    from clusterctl.lab import Lab

    if hosts < 2:
        raise SystemExit("clusterctl bench bootstrap: --hosts must be at least 2 (a control plane and a worker)")
    work = Path(tempfile.mkdtemp(prefix="bench-bootstrap-"))
    source = snapshot_source(work / "source")
    t0 = time.perf_counter()
    from clusterctl.bootstrap.wheelhouse import product_version
    cached = (DEFAULT_CACHE / wheelhouse_key(product_version(source), source) / "wheelhouse.tar").exists()
    build_wheelhouse(source_root=source)
    wheelhouse_s = time.perf_counter() - t0
    lab = Lab(work / "lab", owner_pid=os.getpid())
    try:
        lab.up(hosts)
        names = [h.name for h in lab.hosts]
        inv = write_lab_inventory(lab, work / "inv" / "inventory.ini", control_plane=names[:1], workers=names[1:])
        runs = []
        for n in range(2):
            log = work / f"run{n}.json"
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()) as out:
                rc = bootstrap_main(["-i", str(inv), "--source", str(source), "--log-json", str(log)])
            elapsed = time.perf_counter() - t0
            if rc != 0:
                raise SystemExit(f"bootstrap run {n + 1} failed (rc {rc}):\n{out.getvalue()[-3000:]}")
            events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            recap = [e for e in events if e["event"] == "recap"][-1]["hosts"]
            runs.append((elapsed, sum(h["changed"] for h in recap.values())))
    finally:
        lab.down()
    return {"hosts": hosts, "workers": hosts - 1, "ready_s": round(runs[0][0], 2), "rerun_s": round(runs[1][0], 2),
            "rerun_changed": runs[1][1], "wheelhouse_s": round(wheelhouse_s, 2), "wheelhouse_cached": cached,
            "target_ready_s": 60, "load_avg_1m": round(os.getloadavg()[0], 2)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench bootstrap", description=__doc__.split("\n")[0])
    p.add_argument("--hosts", type=int, default=4, help="lab hosts (1 control plane + the rest workers; default 4)")
    p.add_argument("--json", action="store_true", help="print only the JSON object (default anyway)")
    args = p.parse_args(argv)
    print(json.dumps(measure(args.hosts)))
    return 0
