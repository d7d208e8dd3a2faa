"""Drive ``BridgeNetwork`` from a shell, inside a lab host: ``python netctl.py ACTION JSON``.

Actions: ``start`` {node, ip, cidr, state, nodes}, ``setup``/``teardown`` {... , uid},
``close`` {...}. Prints the JSON result (the pod address for setup). Used by the network
tests to run the real pod network code in a lab host's own namespace.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node_runtime.network.bridge import BridgeNetwork  # noqa: E402


async def serve_proxy(args: dict) -> None:
    """Run a ServiceProxy fed from the JSON file ``args['objects']`` ({services, pods}), re-read
    when it changes; prints ``ready`` after each applied version. Runs until killed."""
    from node_runtime.proxy.service_proxy import ServiceProxy
    from node_runtime.dns.server import ClusterDNS
    dns_ip = args.get("dns")
    proxy = ServiceProxy(None, args["node"], [args["ip"]], connect_timeout=0.3, extra_cluster_ips={dns_ip} if dns_ip else None)
    dns = ClusterDNS("cluster.local")
    path, seen = Path(args["objects"]), None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    try:
        while True:
            stamp = path.stat().st_mtime_ns
            if stamp != seen:
                seen = stamp
                objects = json.loads(path.read_text())
                await proxy.apply(objects["services"], objects["pods"])
                dns.update(objects["services"], objects["pods"])
                if dns_ip and not dns.servers:
                    await dns.start(dns_ip, 53)
                print("ready", stamp, os.getpid(), flush=True)
            await asyncio.sleep(0.05)
    finally:
        dns.close()
        await proxy.close()


async def main(action: str, args: dict) -> dict:
    net = BridgeNetwork(args["node"], args["ip"], Path(args["state"]), pod_cidr=args["cidr"])
    await net.start()
    result: dict = {}
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
