"""``clusterctl bench proxy [--json] [--duration S] [--connections N]``: NodePort vs pod IP.

Setup (needs root; everything in a throwaway 2-host lab, nothing else is ever a target):
node h1 runs the real pod network (``BridgeNetwork``) with one pod whose backend is a small
keep-alive HTTP/1.1 server (asyncio, fixed 6-byte body; Debian's docker-registry managed only
~40 requests/s here, too slow to show the proxy's cost), and the real
``ServiceProxy`` with a NodePort Service in front of it; node h2 has the host-gw route to
h1's pods and runs the client, ``wrk`` (Debian), with N keep-alive connections: first straight
to the pod IP, then through h1's NodePort — same client, same backend, one run.
Prints ``direct_rps``, ``proxied_rps``, ``ratio``, ``direct_p99_ms``, ``proxied_p99_ms``, and
``proxy_cpu_us_per_request`` (CPU of the proxy process and its ``ccl-pump`` per proxied request:
the mode's own cost, much steadier than the ratio on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STANDALONE = str(Path(__file__).resolve().parents[2] / "node_runtime" / "network" / "standalone.py")
HOST_PYTHON = "/usr/bin/python3"
NODE_PORT = 30080
CIDRS = {"h1": "10.244.1.0/24", "h2": "10.244.2.0/24"}
BACKEND_PORT = 8080


def _run(lab, host: str, *argv: str, timeout: float = 60) -> str:
    r = subprocess.run(lab.exec_argv(host, *argv), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{host}: {' '.join(argv)}: exit {r.returncode}: {(r.stderr.strip() or r.stdout.strip())[-2000:]}")
    return r.stdout


def _net(lab, host: str, action: str, **extra) -> dict:
    nodes = [{"metadata": {"name": h.name}, "spec": {"podCIDR": CIDRS[h.name]},
              "status": {"addresses": [{"type": "InternalIP", "address": h.ip}]}} for h in lab.hosts]
    args = {"node": host, "ip": lab.host(host).ip, "cidr": CIDRS[host], "state": "/var/lib/clusterctl/bench/net",
            "nodes": nodes, **extra}
    return json.loads(_run(lab, host, HOST_PYTHON, STANDALONE, action, json.dumps(args)).strip().splitlines()[-1])


def parse_wrk(text: str) -> tuple[float, float, int]:
    """``(requests/s, p99 ms, errors)`` from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return rps, p99, errors + (int(non2xx.group(1)) if non2xx else 0)


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants (the proxy and its ccl-pump)."""
    import psutil
    total = 0.0
    try:
        root = psutil.Process(pid)
        for p in [root, *root.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def measure(duration: float, connections: int, mode: str = "cpump") -> dict:
    from clusterctl.lab import Lab
    lab = Lab(Path(tempfile.mkdtemp(prefix="bench-proxy-")), owner_pid=os.getpid())
    lab.up(2)
    proxy = None
    try:
        for h in ("h1", "h2"):
            _net(lab, h, "start")
        pod = _net(lab, "h1", "setup", uid="benchpod-0001")
        ns = Path(pod["netns"]).name
        subprocess.Popen(lab.exec_argv("h1", "ip", "netns", "exec", ns, HOST_PYTHON, STANDALONE, "http-backend",
                                       json.dumps({"port": BACKEND_PORT})),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        service = {"metadata": {"name": "bench", "namespace": "default"},
                   "spec": {"type": "NodePort", "clusterIP": "10.96.0.50", "selector": {"app": "bench"},
                            "ports": [{"port": 80, "targetPort": BACKEND_PORT, "nodePort": NODE_PORT}]}}
        backend = {"metadata": {"name": "bench", "namespace": "default", "labels": {"app": "bench"}},
                   "status": {"phase": "Running", "podIP": pod["ip"], "conditions": [{"type": "Ready", "status": "True"}]}}
        (lab.host("h1").data_dir / "objects.json").write_text(json.dumps({"services": [service], "pods": [backend]}))
        args = {"node": "h1", "ip": lab.host("h1").ip, "cidr": CIDRS["h1"], "state": "/var/lib/clusterctl/bench/net",
                "objects": "/var/lib/clusterctl/objects.json", "mode": mode}
        proxy = subprocess.Popen(lab.exec_argv("h1", HOST_PYTHON, STANDALONE, "serve", json.dumps(args)),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if not select.select([proxy.stdout], [], [], 15)[0] or not proxy.stdout.readline().startswith("ready"):
            raise RuntimeError(f"proxy did not start: {proxy.stderr.read() if proxy.poll() is not None else 'timeout'}")
        direct_url = f"http://{pod['ip']}:{BACKEND_PORT}/"
        proxied_url = f"http://{lab.host('h1').ip}:{NODE_PORT}/"
        deadline = time.monotonic() + 15
        while subprocess.run(lab.exec_argv("h2", "timeout", "2", "busybox", "wget", "-q", "-O", "/dev/null", proxied_url)).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("backend not reachable through the NodePort")
            time.sleep(0.2)
        # alternate direct/proxied in two rounds so a busy machine's swings hit both alike
        runs: dict[str, list[tuple[float, float, int]]] = {"direct": [], "proxied": []}
        proxy_cpu, proxied_requests = 0.0, 0
        for name, url in (("direct", direct_url), ("proxied", proxied_url)):
            _run(lab, "h2", "wrk", "-t2", f"-c{connections}", "-d1s", url)         # warm-up
        round_s = max(1, round(duration / 2))     # wrk takes whole seconds only ("-d2.5s" is a usage error)
        for _ in range(2):
            for name, url in (("direct", direct_url), ("proxied", proxied_url)):
                cpu0 = _tree_cpu(proxy.pid)
                out = _run(lab, "h2", "wrk", "-t2", f"-c{connections}", f"-d{round_s}s", "--latency", url,
                           timeout=duration + 60)
                runs[name].append(parse_wrk(out))
                if name == "proxied":
                    proxy_cpu += _tree_cpu(proxy.pid) - cpu0
                    proxied_requests += int(re.search(r"(\d+) requests in", out).group(1))
                if os.environ.get("CLUSTERCTL_BENCH_VERBOSE"):
                    print(out, file=sys.stderr)
        (d_rps, d_p99, d_err), (p_rps, p_p99, p_err) = (
            (sum(r[0] for r in rs) / len(rs), max(r[1] for r in rs), sum(r[2] for r in rs)) for rs in (runs["direct"], runs["proxied"]))
        return {"benchmark": "proxy", "client": f"wrk -t2 -c{connections} (Debian) on node h2, 2 alternating rounds of {round_s}s each way",
                "server": "asyncio keep-alive HTTP/1.1 server, fixed 6-byte body (node_runtime/network/standalone.py http-backend) in a pod on node h1",
                "proxy": f"clusterctl ServiceProxy NodePort on node h1 (asyncio accept/connect/retry; mode {mode}: "
                          + {"splice": "one epoll thread moves bytes with splice(2))",
                             "cpump": "the ccl-pump child process (C) moves bytes: epoll, recv/send for a turn's first 16 KiB, "
                                      "splice(2) beyond)",
                             "threads": "two splice(2) threads per connection)",
                             "asyncio": "asyncio protocols)"}[mode],
                "mode": mode, "connections": connections, "duration_s": 2 * round_s,
                "direct_rps": round(d_rps, 1), "proxied_rps": round(p_rps, 1), "ratio": round(p_rps / d_rps, 3),
                "direct_p99_ms": round(d_p99, 3), "proxied_p99_ms": round(p_p99, 3), "target_ratio": 0.5,
                "direct_errors": d_err, "proxied_errors": p_err,
                # the proxy process and its ccl-pump, per proxied request: what the mode costs, whatever the load
                "proxy_cpu_us_per_request": round(proxy_cpu / max(proxied_requests, 1) * 1e6, 2),
                "load_avg_1m": os.getloadavg()[0]}
    finally:
        if proxy is not None:
            proxy.kill()
        lab.down()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench proxy", description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--duration", type=float, default=6.0, help="seconds per way, in two rounds of whole seconds")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--mode", choices=["cpump", "splice", "threads", "asyncio"], default="cpump",
                   help="how the proxy moves bytes (default: cpump, the ccl-pump child process; splice: the same "
                        "loop in one Python epoll thread)")
    args = p.parse_args(argv)
    result = measure(args.duration, args.connections, args.mode)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>16}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
