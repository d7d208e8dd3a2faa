"""The node's network parts without an API server: ``python standalone.py ACTION JSON``.

Actions: ``start`` {node, ip, cidr, state, nodes} (bridge, guards, host-gw routes from the
given Node objects), ``setup``/``teardown`` {..., uid} (a pod's namespace and address),
``http-backend`` {port} (a keep-alive HTTP server, the bench's backend),
``serve`` {..., objects, dns?} (ServiceProxy + cluster DNS fed from a JSON file of
{services, pods}, re-read when it changes; prints ``ready <stamp> <pid>``), ``close``.
It runs with the host's plain ``python3`` (stdlib only), so the network tests and
``clusterctl bench proxy`` can run the real code inside lab hosts, and an operator can poke
at a node's network by hand.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # run as a script by a path

from node_runtime.network.bridge import BridgeNetwork  # noqa: E402


async def serve_proxy(args: dict) -> None:
    """Run a ServiceProxy fed from the JSON file ``args['objects']`` ({services, pods}), re-read
    when it changes; prints ``ready`` after each applied version. Runs until killed."""
    from node_runtime.proxy.forwarder import DEFAULT_MODE
    from node_runtime.proxy.service_proxy import ServiceProxy
    from node_runtime.dns.server import ClusterDNS
    from node_runtime.proxy.table import endpoints_from_pods
    dns_ip = args.get("dns")
    proxy = ServiceProxy(None, args["node"], [args["ip"]], connect_timeout=0.3, extra_cluster_ips={dns_ip} if dns_ip else None,
                         mode=args.get("mode", DEFAULT_MODE))
    dns = ClusterDNS("cluster.local")
    path, seen = Path(args["objects"]), None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    try:
        while True:
            stamp = path.stat().st_mtime_ns
            if stamp != seen:
                seen = stamp
                objects = json.loads(path.read_text())
                endpoints = objects.get("endpoints") or endpoints_from_pods(objects["services"], objects.get("pods") or [])
                await proxy.apply(objects["services"], endpoints)
                dns.update(objects["services"], endpoints)
                if dns_ip and not dns.servers:
                    await dns.start(dns_ip, 53)
                print("ready", stamp, os.getpid(), flush=True)
            await asyncio.sleep(0.05)
    finally:
        dns.close()
        await proxy.close()


class _KeepAliveHttp(asyncio.Protocol):
    """A fixed 200 answer per request, connections kept open (pipelining-safe)."""
    RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n"

    def connection_made(self, transport):
        self.transport, self.buf = transport, b""

    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(self.RESPONSE * n)


async def http_backend(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_KeepAliveHttp, "0.0.0.0", port, backlog=1024)
    print("ready", port, os.getpid(), flush=True)
    await server.serve_forever()


async def main(action: str, args: dict) -> dict:
    result: dict = {}
    if action == "http-backend":
        await http_backend(int(args["port"]))
        return result
    net = BridgeNetwork(args["node"], args["ip"], Path(args["state"]), pod_cidr=args["cidr"], linger=0)
    await net.start()
    if action == "start":
        result["routes"] = await net.sync_routes(args.get("nodes") or [])
    elif action == "setup":
        addr = await net.setup({"metadata": {"uid": args["uid"]}, "spec": {}})
        result = {"netns": addr.netns_path, "ip": addr.pod_ip}
    elif action == "teardown":
        await net.teardown({"metadata": {"uid": args["uid"]}, "spec": {}})
    elif action == "serve":
        await serve_proxy(args)
    elif action == "close":
        await net.close(force=bool(args.get("force")))
    return result


if __name__ == "__main__":
    try:
        print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
    except asyncio.CancelledError:
        pass
