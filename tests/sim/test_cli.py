"""``clusterctl sim nodes N`` as a process: registers the nodes, stops on SIGINT, cleans up if asked."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from clusterctl.client.rest import ApiClient


async def test_sim_nodes_command_registers_and_cleans_up(cluster: tuple[ApiClient, Path]) -> None:
    api, kubeconfig = cluster
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clusterctl", "--kubeconfig", str(kubeconfig), "sim", "nodes", "4", "--prefix", "cli-",
        "--cpu", "2", "--label", "pool=sim", "--taint", "sim=yes:NoSchedule", "--cleanup",
        stderr=asyncio.subprocess.PIPE)
    try:
        line = await asyncio.wait_for(proc.stderr.readline(), 60)  # a cold python start on a loaded machine
        assert b"4 hollow nodes registered" in line
        nodes = (await api.list("nodes", label_selector="pool=sim"))["items"]
        assert sorted(n["metadata"]["name"] for n in nodes) == ["cli-0", "cli-1", "cli-2", "cli-3"]
        assert nodes[0]["spec"]["taints"] == [{"key": "sim", "value": "yes", "effect": "NoSchedule"}]
        assert nodes[0]["status"]["capacity"]["cpu"] == "2"
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert (await api.list("nodes", label_selector="pool=sim"))["items"] == []
