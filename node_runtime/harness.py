"""Running real agents against a real control plane, for tests and ``clusterctl bench pods``.

``agent_config(...)`` writes an agent config with a fresh node token and the given timings;
``AgentHandle`` runs an ``Agent`` inside the caller's event loop (so tests can look inside);
``AgentProcess`` runs ``node-runtime --config`` as a subprocess (restart/kill tests, benchmarks,
RSS). ``wait_pod`` polls the API until a predicate holds. Nothing here is used by the agent itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import yaml

from clusterctl.client.rest import ApiClient

#: timings that make the real lifecycle fast enough for tests
FAST_TIMINGS = {"lease_renew": 1.0, "status_update": 1.0, "crashloop_base": 0.2, "crashloop_max": 1.0, "crashloop_reset": 60.0,
                "image_pull_backoff_base": 0.2, "image_pull_backoff_max": 1.0, "probe_scale": 0.1, "grace_scale": 0.1,
                "configmap_sync": 0.2, "default_grace": 30.0}


def wait_serving(cp, timeout: float = 30.0) -> None:
    """Wait until the control plane has installed its SIGHUP handler (it prints "serving" after
    that): ``node_token`` reloads tokens with SIGHUP, which would kill a server still booting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "serving" in cp.log_file.read_text(errors="replace"):
                return
        except OSError:
            pass
        if cp.process is not None and cp.process.poll() is not None:
            raise RuntimeError(f"control plane exited with {cp.process.returncode}:\n{cp.log_tail()}")
        time.sleep(0.05)
    raise TimeoutError(f"control plane did not report serving within {timeout}s:\n{cp.log_tail()}")


def agent_config(cp, registry_address: str | None, data_dir: Path, node_name: str, *, timings: dict | None = None,
                 extra: dict | None = None) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    token = cp.node_token(node_name)
    cfg: dict[str, Any] = {"node_name": node_name, "data_dir": str(data_dir), "server": cp.url, "token": token,
                           "ca_file": str(cp.ca_file), "address": "127.0.0.1",
                           "timings": dict(FAST_TIMINGS if timings is None else timings)}
    if registry_address:
        cfg["registries"] = {"allowed": [registry_address]}
    cfg.update(extra or {})
    path = data_dir / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def admin_client(cp) -> ApiClient:
    return ApiClient.from_kubeconfig(str(cp.kubeconfig))


async def wait_pod(client: ApiClient, namespace: str, name: str, predicate: Callable[[dict], bool], timeout: float = 30.0,
                   poll: float = 0.05) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        try:
            pod = await client.get("pods", name, namespace=namespace)
            if predicate(pod):
                return pod
        except Exception:  # noqa: BLE001 - keep polling until the deadline
            pass
        await asyncio.sleep(poll)
    raise TimeoutError(f"pod {namespace}/{name} did not reach the expected state in {timeout}s; last status: {pod.get('status')}")


class AgentHandle:
    """An in-process agent for tests."""

    def __init__(self, cp, registry, data_dir: Path, node_name: str, *, timings: dict | None = None, extra: dict | None = None):
        self.cp = cp
        self.registry = registry
        self.data_dir = data_dir
        self.node_name = node_name
        self.config_path = agent_config(cp, registry.address if registry else None, data_dir, node_name, timings=timings, extra=extra)
        self.client = admin_client(cp)
        self.agent = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        from node_runtime.agent import Agent
        from node_runtime.config import AgentConfig
        self.agent = Agent(AgentConfig.load(self.config_path))
        self.task = asyncio.create_task(self.agent.run())
        waiter = asyncio.create_task(self.agent.registered.wait())
        done, _ = await asyncio.wait({self.task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()
        if waiter not in done:
            waiter.cancel()
            raise TimeoutError("agent did not register")

    async def stop(self, *, stop_pods: bool = False) -> None:
        """Stop the agent (pods keep running unless ``stop_pods``)."""
        if self.task is None:
            return
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.agent.shutdown(stop_pods=stop_pods)
        self.task = None

    async def close(self) -> None:
        if self.task is not None:
            await self.stop(stop_pods=True)
        # anything a test left behind (e.g. containers of an agent it stopped without stopping pods)
        from node_runtime.agent import Agent
        from node_runtime.config import AgentConfig
        leftover = Agent(AgentConfig.load(self.config_path))
        for state in leftover.runtime.adopt():
            leftover.runtime.kill(state.id)
            await leftover.runtime.remove(state.id)
        leftover.runtime.cgroups.cleanup()
        for ns in Path("/run/netns").glob(f"clusterctl-{leftover.config.safe_name}-*"):
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
        await leftover.registry.close()
        await leftover.client.close()
        _unmount_under(self.data_dir)
        await self.client.close()

    def pod(self, name: str, containers: list[dict], **spec: Any) -> dict:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": self.node_name, "terminationGracePeriodSeconds": 2, "containers": containers, **spec}}


class AgentProcess:
    """``node-runtime --config FILE`` as a subprocess."""

    def __init__(self, config_path: Path, *, log_path: Path | None = None):
        self.config_path = config_path
        self.log_path = log_path or config_path.with_name("agent.log")
        self.proc: subprocess.Popen | None = None

    def start(self) -> "AgentProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "node_runtime.cli", "--config", str(self.config_path)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


def _unmount_under(root: Path) -> None:
    """Detach any mount a test left under ``root`` (tmpfs volumes), deepest first."""
    root = str(root.resolve())
    try:
        with open("/proc/self/mounts") as fh:
            mounts = [line.split()[1] for line in fh]
    except OSError:
        return
    for m in sorted((m for m in mounts if m == root or m.startswith(root + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], capture_output=True)
