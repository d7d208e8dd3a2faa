"""The node agent against a real API server, a real registry and real containers (root, as CI)."""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from node_runtime.harness import wait_pod


async def fetch_in_netns(ns: str, port: int, path: str = "/", timeout: float = 10.0) -> str:
    """wget from the agent's side into the pod's network namespace (retrying while the server binds)."""
    deadline = time.monotonic() + timeout
    while True:
        out = subprocess.run(["ip", "netns", "exec", ns, "busybox", "wget", "-qO-", f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 or time.monotonic() > deadline:
            assert out.returncode == 0, out.stderr
            return out.stdout
        await asyncio.sleep(0.1)


def running(pod):
    return (pod.get("status") or {}).get("phase") == "Running"


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions") or [])


async def test_node_registered_with_lease(agent):
    node = await agent.client.get("nodes", agent.node_name)
    st = node["status"]
    assert st["nodeInfo"]["containerRuntimeVersion"] == "process://0.1.0"
    assert st["nodeInfo"]["kubeletVersion"] == "v1.32.0+clusterctl.0.1.0"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == agent.node_name
    assert int(st["capacity"]["pods"]) == 110 and st["allocatable"]["cpu"]
    assert {a["type"] for a in st["addresses"]} == {"InternalIP", "Hostname"}
    assert next(c for c in st["conditions"] if c["type"] == "Ready")["status"] == "True"
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] == agent.agent.endpoint_port
    lease = await agent.client.get("leases", agent.node_name, namespace="kube-node-lease")
    assert lease["spec"]["holderIdentity"] == agent.node_name


async def test_httpd_serves_from_its_rootfs(agent, images):
    pod = agent.pod("web", [{"name": "web", "image": images["web:v1"], "ports": [{"containerPort": 8080}]}])
    await agent.client.create(pod)
    pod = await wait_pod(agent.client, "default", "web", ready, timeout=30)
    st = pod["status"]
    cs = st["containerStatuses"][0]
    assert cs["state"]["running"]["startedAt"] and cs["ready"] and cs["started"]
    assert cs["containerID"].startswith("process://") and "@sha256:" in cs["imageID"]
    assert st["podIP"] and st["hostIP"] == "127.0.0.1" and st["startTime"] and st["qosClass"] == "BestEffort"
    ns = agent.agent.network.netns_name(pod)
    assert await fetch_in_netns(ns, 8080) == "hello v1\n"
    await agent.client.delete("pods", "web", namespace="default")
