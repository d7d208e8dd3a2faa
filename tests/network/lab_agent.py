"""Run a real node agent with the real pod network, Service proxy and DNS inside a lab host.

``python3 lab_agent.py CONFIG`` (the host's python3, with the venv's site-packages on
PYTHONPATH): the agent wiring the lead will put in ``node-runtime`` — ``NodeNetwork`` gives the
agent its ``PodNetwork`` and runs routes, proxy and DNS beside it. SIGTERM stops everything,
pods included, and removes the node's network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node_runtime.agent import Agent, make_client  # noqa: E402
from node_runtime.config import AgentConfig  # noqa: E402
from node_runtime.network.node import NodeNetwork  # noqa: E402


def log_proxy_connections() -> None:
    """SIGUSR1: the proxy's open connections into the log (the e2e asks when a request fails)."""
    from node_runtime.proxy import forwarder
    lines = forwarder.describe_pumps() or ["no pump"]
    logging.getLogger("lab_agent").warning("proxy connections (%d):\n%s", len(lines), "\n".join(lines))


async def main(path: str) -> None:
    config = AgentConfig.load(path)
    client = make_client(config)
    net = NodeNetwork(config, client, proxy_mode=os.environ.get("CLUSTERCTL_PROXY_MODE"))  # None: the default
    agent = Agent(config, client=client, network=net.pods)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, log_proxy_connections)
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(net.run())]
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    for t in tasks + [waiter]:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await agent.shutdown(stop_pods=True)
    await net.close()
    for r in results:
        if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
            raise r


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(sys.argv[1]))
