"""``clusterctl bench api``: the API server under load, over HTTPS on loopback.

Starts a real control plane (subprocess, TLS, bearer token; store = tinydb or a local etcd),
then measures, with ``--objects`` pods stored:

- ``durable_writes_per_s``: acknowledged creates per second from ``--writers`` concurrent
  keep-alive HTTPS connections (each 201 means the write is in the fsync'd log), driven by
  ``wrk`` (C, one thread, ``--write-seconds``, creates with ``generateName``) so the client's own
  CPU does not cap the figure; without wrk, the population phase's rate. The population phase
  (``--objects`` creates from ``--writers`` Python/aiohttp coroutines) is reported as
  ``populate_writes_per_s``; ``durable_writes_client`` says which client the headline used;
- ``create_*``/``update_*``/``get_*``: latency of single requests from one client (p50/p99);
- ``list_all_s``: one LIST of every pod (median of 3);
- ``watch_p99_ms``: time from sending an update to its event arriving at each of ``--watchers``
  watchers;
- ``recovery_s``: SIGKILL the server, start it again, time until ``/readyz`` answers (includes
  the interpreter start and the store's log replay);
- ``rss_mb``: the server's resident memory with everything loaded.

Prints one JSON object (``--json``) or a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import ssl
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil

from clusterctl.api.testing import start_control_plane

NS = "bench"
_MARK = re.compile(rb'"bench/mark":"(m\d+)"')


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": {"app": "bench", "shard": name[-1]}},
            "spec": {"containers": [{"name": "app", "image": "registry.local/bench:1.0",
                                     "command": ["/bin/app", "--serve"], "ports": [{"containerPort": 8080}],
                                     "env": [{"name": "MODE", "value": "bench"}],
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


class Client:
    def __init__(self, url: str, token: str, ca_file: Path, *, connections: int = 64):
        self.url = url
        ctx = ssl.create_default_context(cafile=str(ca_file)) if url.startswith("https") else None
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx if ctx else False, limit=connections),
            headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=None))

    async def call(self, method: str, path: str, body: dict | None = None, *, content_type: str = "application/json"):
        data = orjson.dumps(body) if body is not None else None
        async with self.session.request(method, self.url + path, data=data,
                                        headers={"Content-Type": content_type} if data else None) as resp:
            payload = await resp.read()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path}: {resp.status} {payload[:300]!r}")
            return payload

    async def close(self) -> None:
        await self.session.close()


async def _populate(client: Client, count: int, writers: int) -> tuple[float, list[float]]:
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(f"pod-{i:06d}")
    latencies: list[float] = []

    async def writer() -> None:
        while True:
            try:
                name = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            await client.call("POST", f"/api/v1/namespaces/{NS}/pods", _pod(name))
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(writer() for _ in range(writers)))
    return count / (time.perf_counter() - t0), latencies


_WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. io.open("{token_file}"):read("*l")
wrk.body = '{body}'
"""


def parse_wrk(out: str) -> dict:
    """Counts from wrk's report: total requests, seconds, non-2xx answers and socket errors."""
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    if not m:
        raise RuntimeError(f"wrk printed no request count:\n{out[-2000:]}")
    seconds = float(m.group(2)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[m.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(m.group(1)), "seconds": seconds, "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0}


def wrk_writes(url: str, token: str, workdir: Path, *, connections: int, seconds: int) -> dict | None:
    """Acknowledged creates per second from ``connections`` keep-alive connections of wrk; None without wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    token_file = workdir / "wrk-token"
    token_file.touch(mode=0o600)
    token_file.write_text(token + "\n")  # read by the script: never on a command line
    body = _pod("x")
    body["metadata"].pop("name")
    body["metadata"]["generateName"] = "wrk-"
    script = workdir / "create.lua"
    script.write_text(_WRK_SCRIPT.format(token_file=token_file, body=orjson.dumps(body).decode()))
    try:
        proc = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                               f"{url}/api/v1/namespaces/{NS}/pods"], capture_output=True, text=True, timeout=seconds + 60)
    finally:
        token_file.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    counts = parse_wrk(proc.stdout)
    acknowledged = counts["requests"] - counts["non_2xx"]
    return {**counts, "acknowledged": acknowledged, "per_s": acknowledged / counts["seconds"] if counts["seconds"] else 0.0}


async def _sequential(client: Client, samples: int, make) -> list[float]:
    out = []
    for i in range(samples):
        method, path, body, ctype = make(i)
        t0 = time.perf_counter()
        await client.call(method, path, body, content_type=ctype)
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def _watch_latency(client: Client, watchers: int, updates: int, objects: int) -> list[float]:
    rv = orjson.loads(await client.call("GET", f"/api/v1/namespaces/{NS}/pods?limit=1"))["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    delays: list[float] = []
    ready = 0
    done = asyncio.Event()
    expected = watchers * updates

    async def watcher() -> None:
        nonlocal ready
        url = f"{client.url}/api/v1/namespaces/{NS}/pods?watch=1&resourceVersion={rv}&timeoutSeconds=120"
        async with client.session.get(url) as resp:
            ready += 1
            buf = b""
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    found = _MARK.search(line)   # cheaper than parsing every event on the client
                    mark = found.group(1).decode() if found else None
                    if mark in sent:
                        delays.append((now - sent[mark]) * 1000)
                        if len(delays) >= expected:
                            done.set()
                if done.is_set():
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    while ready < watchers:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    for i in range(updates):
        mark = f"m{i}"
        name = f"pod-{(i * 7919) % objects:06d}"
        sent[mark] = time.perf_counter()
        await client.call("PATCH", f"/api/v1/namespaces/{NS}/pods/{name}",
                          {"metadata": {"annotations": {"bench/mark": mark}}},
                          content_type="application/merge-patch+json")
        await asyncio.sleep(0.01)
    try:
        await asyncio.wait_for(done.wait(), timeout=60)
    except asyncio.TimeoutError:
        pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return delays


async def run_bench(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="clusterctl-bench-api-"))
    etcd = None
    store = {"backend": "tinydb"}
    if args.backend == "etcd":
        from clusterctl.store.etcd_process import LocalEtcd
        etcd = LocalEtcd(tmp / "etcd").start()
        store = etcd.store_config()  # TLS with a client certificate, as bootstrap runs it
    cp = await asyncio.to_thread(start_control_plane, tmp / "cp", store=store)
    result: dict = {"backend": args.backend, "objects": args.objects}
    client = Client(cp.url, cp.token, cp.ca_file, connections=max(64, args.watchers + args.writers + 8))
    try:
        await client.call("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
        server = psutil.Process(cp.process.pid)
        cpu0 = sum(server.cpu_times()[:2])
        rate, pop = await _populate(client, args.objects, args.writers)
        result["durable_writes_per_s"] = round(rate, 1)
        result["durable_writes_client"] = "python-aiohttp"
        result["populate_writes_per_s"] = round(rate, 1)
        # CPU the server spent per acknowledged write: tells a CPU-bound server from a starved one
        result["server_cpu_ms_per_write"] = round((sum(server.cpu_times()[:2]) - cpu0) / args.objects * 1000, 3)
        result["load_average_1m"] = round(os.getloadavg()[0], 2)
        result["populate_p99_ms"] = round(_pct(pop, 99) * 1000, 2)

        n = args.samples
        creates = await _sequential(client, n, lambda i: ("POST", f"/api/v1/namespaces/{NS}/pods", _pod(f"extra-{i:05d}"),
                                                          "application/json"))
        bodies = [_pod(f"pod-{(i * 31) % args.objects:06d}") for i in range(n)]
        for i, b in enumerate(bodies):
            b["metadata"]["labels"]["rev"] = str(i)
        updates = await _sequential(client, n, lambda i: ("PUT", f"/api/v1/namespaces/{NS}/pods/{bodies[i]['metadata']['name']}",
                                                          bodies[i], "application/json"))
        gets = await _sequential(client, n, lambda i: ("GET", f"/api/v1/namespaces/{NS}/pods/pod-{(i * 17) % args.objects:06d}",
                                                       None, "application/json"))
        for key, values in (("create", creates), ("update", updates), ("get", gets)):
            result[f"{key}_p50_ms"] = round(_pct(values, 50), 2)
            result[f"{key}_p99_ms"] = round(_pct(values, 99), 2)

        lists = []
        for _ in range(3):
            t0 = time.perf_counter()
            body = await client.call("GET", "/api/v1/pods")
            lists.append(time.perf_counter() - t0)
        result["list_all_s"] = round(statistics.median(lists), 3)
        result["list_items"] = len(orjson.loads(body)["items"])

        delays = await _watch_latency(client, args.watchers, args.watch_updates, args.objects)
        result["watchers"] = args.watchers
        result["watch_events"] = len(delays)
        result["watch_p50_ms"] = round(_pct(delays, 50), 2)
        result["watch_p99_ms"] = round(_pct(delays, 99), 2)

        result["rss_mb"] = round(psutil.Process(cp.process.pid).memory_info().rss / 2**20, 1)
        await client.close()
        cp.kill()
        t0 = time.perf_counter()
        await asyncio.to_thread(cp.start, 60)
        result["recovery_s"] = round(time.perf_counter() - t0, 3)
        client = Client(cp.url, cp.token, cp.ca_file)
        after = orjson.loads(await client.call("GET", f"/api/v1/namespaces/{NS}/pods?limit=1"))
        result["recovered_ok"] = bool(after["items"])
        result["rss_after_restart_mb"] = round(psutil.Process(cp.process.pid).memory_info().rss / 2**20, 1)

        # last, so the extra pods change no figure above: the server's write rate with a client
        # that is not itself the bottleneck (a Python client spends about as much CPU per request
        # as the server does)
        if args.write_seconds > 0:
            server_after = psutil.Process(cp.process.pid)
            cpu0 = sum(server_after.cpu_times()[:2])
            writes = await asyncio.to_thread(wrk_writes, cp.url, cp.token, tmp, connections=args.writers, seconds=args.write_seconds)
            if writes is not None:
                if writes["non_2xx"] or writes["socket_errors"]:
                    raise RuntimeError(f"wrk writes: {writes['non_2xx']} non-2xx answers, {writes['socket_errors']} socket errors")
                result["durable_writes_per_s"] = round(writes["per_s"], 1)
                result["durable_writes_client"] = f"wrk ({args.writers} connections, {args.write_seconds} s)"
                result["durable_writes_acknowledged"] = writes["acknowledged"]
                result["server_cpu_ms_per_write_wrk"] = round((sum(server_after.cpu_times()[:2]) - cpu0) / max(1, writes["acknowledged"]) * 1000, 3)
    finally:
        await client.close()
        await asyncio.to_thread(cp.stop)
        if etcd is not None:
            etcd.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["targets_met"] = {
        "mutation_p99_le_10ms": max(result["create_p99_ms"], result["update_p99_ms"]) <= 10,
        "list_all_le_1s": result["list_all_s"] <= 1,
        "watch_p99_le_100ms": result["watch_p99_ms"] <= 100,
        "durable_writes_ge_2000": result["durable_writes_per_s"] >= 2000,
        "recovery_le_2s": result["recovery_s"] <= 2,
        "rss_le_150mb": result["rss_mb"] <= 150,
    }
    return result


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="clusterctl bench api", description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=10_000)
    p.add_argument("--backend", choices=["tinydb", "etcd"], default="tinydb")
    p.add_argument("--writers", type=int, default=16)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--watch-updates", type=int, default=100)
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--write-seconds", type=int, default=5, help="seconds of wrk creates for durable_writes_per_s (0: the population phase's rate)")
    p.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    result = asyncio.run(run_bench(args))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:<24}{v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(os.sys.argv[1:]))
