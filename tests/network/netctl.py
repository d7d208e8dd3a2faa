"""Drive ``BridgeNetwork`` from a shell, inside a lab host: ``python netctl.py ACTION JSON``.

Actions: ``start`` {node, ip, cidr, state, nodes}, ``setup``/``teardown`` {... , uid},
``close`` {...}. Prints the JSON result (the pod address for setup). Used by the network
tests to run the real pod network code in a lab host's own namespace.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node_runtime.network.bridge import BridgeNetwork  # noqa: E402


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
    elif action == "close":
        await net.close(force=bool(args.get("force")))
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))))
