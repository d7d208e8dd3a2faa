"""``node-runtime --config FILE``: run one node agent in the foreground.

SIGTERM/SIGINT stop it cleanly and leave its pods running (the next agent adopts them) unless
``--stop-pods-on-exit`` is given, which stops every container and removes sandboxes first.
Exit codes: 0 clean stop, 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import signal
import sys

from node_runtime.config import AgentConfig, ConfigError

TLS_READ_BUFFER = 32 * 1024


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="node-runtime", description="clusterctl node agent: runs the pods bound to this node")
    p.add_argument("--config", required=True, help="agent config file (YAML)")
    p.add_argument("--stop-pods-on-exit", action="store_true", help="stop all pods when the agent stops")
    p.add_argument("--log-level", default="INFO")
    return p


async def _run(config: AgentConfig, stop_pods: bool) -> int:
    from node_runtime.agent import Agent, make_client
    net = None
    if config.network == "bridge":
        from node_runtime.network.node import NodeNetwork
        client = make_client(config)
        net = NodeNetwork(config, client, cluster_cidr=config.cluster_cidr, service_cidr=config.service_cidr)
        agent = Agent(config, client=client, network=net.pods)
    elif config.network == "loopback":
        agent = Agent(config)
    else:
        print(f"node-runtime: unknown network {config.network!r} (bridge or loopback)", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(agent.run())
    net_task = asyncio.create_task(net.run()) if net is not None else None
    stopper = asyncio.create_task(stop.wait())
    waited = {task, stopper} | ({net_task} if net_task else set())
    done, _ = await asyncio.wait(waited, return_when=asyncio.FIRST_COMPLETED)
    for t in waited:
        t.cancel()
    await asyncio.gather(*waited, return_exceptions=True)
    await agent.shutdown(stop_pods=stop_pods)
    if net is not None:
        await net.close()
    if net_task is not None and net_task in done and not net_task.cancelled() and net_task.exception() is not None:
        logging.getLogger("node_runtime").error("node network failed: %s", net_task.exception())
        return 1
    if task in done and task.exception() is not None:
        logging.getLogger("node_runtime").error("agent failed: %s", task.exception())
        return 1
    return 0


def _limit_malloc_arenas() -> None:
    """One malloc arena per worker thread would keep megabytes of RSS per thread for the agent's
    whole life; two are plenty for its few short blocking calls."""
    import ctypes
    import ctypes.util
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _shrink_tls_read_buffers() -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer, zero-filled (so resident) up front:
    with a connection per concurrent API write in a burst of pod starts that was ~10 MB of the
    agent's RSS. A TLS record is at most 16 KiB, so 32 KiB reads lose nothing."""
    from asyncio import sslproto
    if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
        sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def _skip_frozenlist_extension() -> None:
    """aiohttp's ``frozenlist`` C++ extension maps libstdc++ (~0.8 MB resident) for lists the agent
    freezes a handful of times at start; the pure-Python one is equivalent. Must run before aiohttp
    is imported."""
    os.environ.setdefault("FROZENLIST_NO_EXTENSIONS", "1")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _limit_malloc_arenas()
    _skip_frozenlist_extension()
    _shrink_tls_read_buffers()
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = AgentConfig.load(args.config)
    except ConfigError as exc:
        print(f"node-runtime: {exc}", file=sys.stderr)
        return 2
    faulthandler.enable()  # a native crash leaves every thread's stack in the agent's log
    return asyncio.run(_run(config, args.stop_pods_on_exit))


if __name__ == "__main__":
    sys.exit(main())
