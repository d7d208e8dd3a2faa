"""``LocalCluster``: a whole cluster on this machine — control plane plus N real node agents.

What ``clusterctl up``, its benchmark and the end-to-end tests start. The layout:

- **Control plane**: ``clusterctl control-plane`` on ``127.0.0.1:PORT`` (HTTPS) over the data
  directory ``DIR`` (TinyDB store, CA, tokens, ``DIR/kubeconfig``), with the scheduler and the
  controller manager as in-process components. It is started in *our* process group, so a
  SIGKILL to ``up``'s group takes it down too.
- **Nodes**: each node agent runs in its own network namespace, wired like a lab host: a veth
  into a bridge in the root namespace (a machine-wide *slot* of ``clusterctl.lab.slots``, so
  concurrent clusters and labs never collide: subnet 10.200.k.0/24, gateway .1, node i at .10+i).
  The node's InternalIP is that address: reachable from this machine, and its NodePorts answer
  there (the node's Service proxy). Inside a node namespace nothing leads out (no default
  route); pod networking, host-gw routes between nodes and the Service proxy are the node
  runtime's own ``NodeNetwork``.
- **Loopback ports the nodes need** (the API server, the user's registry on 127.0.0.1:5055,
  our own registry): inside every node namespace a forwarder listens on 127.0.0.1:P and
  connects to the gateway, where a forwarder in the root namespace (in this process) connects
  to 127.0.0.1:P. So node configs say ``https://127.0.0.1:PORT`` and ``127.0.0.1:5055/img`` works
  on every node exactly as on this machine, and the server certificate needs no extra names.
- **Resume**: everything lives in ``DIR``; a second ``up`` on the same ``DIR`` reuses the store,
  tokens and node data (a different slot is fine: nodes re-publish their address).

``python -m clusterctl.local_cluster node CONFIG --forward GATEWAY PORT...`` is the launcher run
inside a node namespace (agent + NodeNetwork + forwarders).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from clusterctl.errors import ClusterctlError

log = logging.getLogger(__name__)

USER_REGISTRY_PORT = 5055
COMPONENTS = ["clusterctl.scheduler.scheduler:scheduler_component",
              "clusterctl.controllers.manager:controller_manager_component"]
#: node agent timings for a laptop cluster: quick status, real-ish probes and back-offs
NODE_TIMINGS = {"lease_renew": 2.0, "status_update": 2.0, "crashloop_base": 1.0, "crashloop_max": 30.0,
                "image_pull_backoff_base": 1.0, "image_pull_backoff_max": 30.0, "grace_scale": 0.2, "configmap_sync": 2.0}


class LocalClusterError(ClusterctlError):
    """The local cluster could not be started (a part failed, or the machine lacks something)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- TCP forwarding


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def forward(listen_host: str, port: int, target_host: str, target_port: int | None = None) -> asyncio.base_events.Server:
    """Accept on ``listen_host:port`` and splice each connection to ``target_host:target_port``."""
    target_port = target_port or port

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()

    return await asyncio.start_server(handle, listen_host, port, reuse_address=True)


# --------------------------------------------------------------------------- the node launcher


async def run_node(config_path: str, gateway: str, ports: list[int]) -> None:
    """Inside a node namespace: loopback up, forwarders to the gateway, the agent with its network."""
    from node_runtime.agent import Agent, make_client
    from node_runtime.config import AgentConfig
    from node_runtime.network.node import NodeNetwork
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    servers = [await forward("127.0.0.1", p, gateway) for p in ports]
    config = AgentConfig.load(config_path)
    client = make_client(config)
    net = NodeNetwork(config, client)
    agent = Agent(config, client=client, network=net.pods)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(agent.run()), asyncio.create_task(net.run())]
    waiter = asyncio.create_task(stop.wait())
    await asyncio.wait([*tasks, waiter], return_when=asyncio.FIRST_COMPLETED)
    for t in [*tasks, waiter]:
        t.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await agent.shutdown(stop_pods=True)
    await net.close()
    for s in servers:
        s.close()
    await client.close()
    for r in results:
        if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
            raise r


# --------------------------------------------------------------------------- the cluster


@dataclass
class NodeProcess:
    name: str
    index: int
    address: str
    netns: str
    config: Path
    process: subprocess.Popen | None = None


@dataclass
class LocalCluster:
    """Start with ``await start(status)``, stop with ``await stop()``; see the module docstring."""

    data_dir: Path
    nodes: int = 2
    port: int | None = None
    own_registry: bool = True
    node_timings: dict[str, float] = field(default_factory=lambda: dict(NODE_TIMINGS))
    cp_process: subprocess.Popen | None = None
    registry_process: subprocess.Popen | None = None
    registry_port: int | None = None
    node_procs: list[NodeProcess] = field(default_factory=list)
    _servers: list[Any] = field(default_factory=list)
    _names: Any = None
    _lock_file: Any = None

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir).resolve()

    # ------------------------------------------------------------------ paths

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "control-plane.yaml"

    @property
    def api_port(self) -> int:
        return int(yaml.safe_load(self.config_path.read_text())["port"])

    @property
    def registry_address(self) -> str | None:
        return f"127.0.0.1:{self.registry_port}" if self.registry_port else None

    def node_addresses(self) -> dict[str, str]:
        return {n.name: n.address for n in self.node_procs}

    # ------------------------------------------------------------------ start

    async def start(self, status: Callable[[str], None] = lambda _m: None, *, ready_timeout: float = 60.0) -> None:
        self._check_machine()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock()
        state = self._read_state()
        status("control plane: initialising" if not self.config_path.exists() else "control plane: resuming")
        port = self._init_control_plane()
        status("network: bridge and node namespaces")
        self._wire(state)
        if self.own_registry:
            self._start_registry()
        ports = [port, USER_REGISTRY_PORT] + ([self.registry_port] if self.registry_port else [])
        for p in ports:
            try:
                self._servers.append(await forward(self._names.gateway, p, "127.0.0.1"))
            except OSError as exc:
                raise LocalClusterError(f"cannot forward port {p} on {self._names.gateway}: {exc}") from exc
        configs = [self._node_config(i) for i in range(1, self.nodes + 1)]  # tokens exist before the server reads its file
        self._start_control_plane()
        # the agents start alongside the control plane: their client retries until it answers
        status(f"nodes: starting {self.nodes} node agents")
        self._start_nodes(configs, ports)
        await self._wait_api(status)
        await self._wait_nodes_ready(status, ready_timeout)

    def _lock(self) -> None:
        """One ``up`` per data dir: a second one would tear down the first one's network."""
        import fcntl
        self._lock_file = open(self.data_dir / "up.lock", "a+")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.seek(0)
            holder = self._lock_file.read().strip() or "?"
            self._lock_file.close()
            self._lock_file = None
            raise LocalClusterError(f"another clusterctl up (pid {holder}) is running on {self.data_dir}") from None
        self._lock_file.truncate(0)
        self._lock_file.write(str(os.getpid()))
        self._lock_file.flush()

    def _check_machine(self) -> None:
        if os.geteuid() != 0:
            raise LocalClusterError("clusterctl up needs root (network namespaces, bridges, cgroups)")
        if shutil.which("ip") is None:
            raise LocalClusterError("clusterctl up needs iproute2 (`ip`)")

    def _read_state(self) -> dict:
        try:
            return json.loads((self.data_dir / "lab.json").read_text())
        except (OSError, ValueError):
            return {}

    def _init_control_plane(self) -> int:
        from clusterctl.api.cli import init_data_dir
        from clusterctl.api import config as cfgmod
        if not self.config_path.exists():
            port = self.port or (6443 if _port_is_free(6443) else free_port())
            init_data_dir(self.data_dir, port=port, extra={"components": COMPONENTS}, force=True)
            return port
        if self.port:
            raw = yaml.safe_load(self.config_path.read_text())
            if raw.get("port") != self.port:
                raw["port"] = self.port
                cfgmod.save(cfgmod.from_dict(raw, where=str(self.config_path)), self.config_path)
        return self.api_port

    def _start_control_plane(self) -> None:
        log_file = open(self.data_dir / "control-plane.log", "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # same process group as `up`: a SIGKILL to the group takes the control plane with it
        self.cp_process = subprocess.Popen([sys.executable, "-m", "clusterctl", "control-plane", "--config", str(self.config_path)],
                                           stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log_file.close()

    def _start_registry(self) -> None:
        from node_runtime.images.registry_process import _CONFIG
        binary = shutil.which("docker-registry") or shutil.which("registry")
        if binary is None:
            log.warning("docker-registry not installed: no local registry (images must come from elsewhere)")
            return
        reg_dir = self.data_dir / "registry"
        reg_dir.mkdir(exist_ok=True)
        port_file = reg_dir / "port"
        port = int(port_file.read_text()) if port_file.exists() else free_port()
        if port == USER_REGISTRY_PORT:
            port = free_port()
        port_file.write_text(str(port))
        cfg = reg_dir / "config.yml"
        cfg.write_text(_CONFIG.format(root=reg_dir / "storage", port=port))
        log_file = open(reg_dir / "registry.log", "ab")
        self.registry_process = subprocess.Popen([binary, "serve", str(cfg)], stdout=log_file, stderr=log_file, stdin=subprocess.DEVNULL)
        log_file.close()
        self.registry_port = port

    def _wire(self, state: dict) -> None:
        from clusterctl.lab import network as labnet
        from clusterctl.lab.slots import MachineNetwork, allocate_slot, slot_lock
        old = state.get("slot")
        if old:
            self._teardown_slot(int(old))
        with slot_lock():
            names = allocate_slot(self.data_dir, os.getpid(), sweep=lambda n: labnet.teardown("ip", n, [], []),
                                  observe=MachineNetwork.observe)
            (self.data_dir / "lab.json").write_text(json.dumps({"slot": names.slot, "dir": str(self.data_dir), "kind": "clusterctl-up"}))
        self._names = names
        labnet.create_bridge("ip", names)
        labnet.wire_hosts("ip", names, range(1, self.nodes + 1))
        commands = []
        for i in range(1, self.nodes + 1):
            ns = names.netns(i)
            commands += [f"-n {ns} addr add {names.ip(i)}/24 dev eth0", f"-n {ns} link set eth0 up", f"-n {ns} link set lo up"]
        for line in commands:
            subprocess.run(["ip", *line.split()], check=True, capture_output=True)

    def _teardown_slot(self, slot: int) -> None:
        from clusterctl.lab import network as labnet
        from clusterctl.lab.slots import SlotNames, claim_for_teardown, release_claim, slot_lock
        names = SlotNames(slot)
        with slot_lock():
            if claim_for_teardown(slot, self.data_dir):
                with contextlib.suppress(ClusterctlError):
                    labnet.teardown("ip", names, [], [])
                release_claim(slot, self.data_dir)

    async def _wait_api(self, status: Callable[[str], None], timeout: float = 30.0) -> None:
        from clusterctl.client.rest import ApiClient
        deadline = time.monotonic() + timeout
        while True:
            if self.cp_process is not None and self.cp_process.poll() is not None:
                tail = (self.data_dir / "control-plane.log").read_text(errors="replace").splitlines()[-15:]
                raise LocalClusterError(f"the control plane exited with {self.cp_process.returncode}:\n" + "\n".join(tail))
            if self.kubeconfig.exists():
                try:
                    async with ApiClient.from_kubeconfig(str(self.kubeconfig), retries=0) as c:
                        await c.request("GET", "/readyz", raw=True, timeout=1.0)
                        status("control plane: ready")
                        return
                except ClusterctlError:
                    pass
            if time.monotonic() > deadline:
                raise LocalClusterError(f"the control plane did not become ready within {timeout:.0f}s (see {self.data_dir / 'control-plane.log'})")
            await asyncio.sleep(0.05)

    def _node_config(self, i: int) -> Path:
        from clusterctl.api.auth import TokenFile
        name = f"node-{i}"
        node_dir = self.data_dir / "nodes" / name
        node_dir.mkdir(parents=True, exist_ok=True)
        path = node_dir / "agent.yaml"
        token = None
        if path.exists():
            with contextlib.suppress(Exception):
                token = (yaml.safe_load(path.read_text()) or {}).get("token")
        if not token:
            tokens = TokenFile.load(self.data_dir / "tokens.yaml")
            token = tokens.add_node(name)
            tokens.save()
            if self.cp_process is not None and self.cp_process.poll() is None:
                self.cp_process.send_signal(signal.SIGHUP)
        cfg = {"node_name": name, "data_dir": str(node_dir), "server": f"https://127.0.0.1:{self.api_port}", "token": token,
               "ca_file": str(self.data_dir / "pki" / "ca.crt"), "address": self._names.ip(i), "cluster_dns": "10.96.0.10",
               "timings": dict(self.node_timings)}
        path.write_text(yaml.safe_dump(cfg))
        return path

    def _start_nodes(self, configs: list[Path], ports: list[int]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        for i, cfg in enumerate(configs, start=1):
            ns = self._names.netns(i)
            log_file = open(cfg.parent / "agent.log", "ab")
            argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "clusterctl.local_cluster", "node", str(cfg),
                    "--gateway", self._names.gateway, "--forward", *map(str, ports)]
            proc = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
            log_file.close()
            self.node_procs.append(NodeProcess(f"node-{i}", i, self._names.ip(i), ns, cfg, proc))

    async def _wait_nodes_ready(self, status: Callable[[str], None], timeout: float) -> None:
        from clusterctl.client.rest import ApiClient
        deadline = time.monotonic() + timeout
        want = {n.name for n in self.node_procs}
        last = ""
        async with ApiClient.from_kubeconfig(str(self.kubeconfig)) as c:
            while True:
                for n in self.node_procs:
                    if n.process is not None and n.process.poll() is not None:
                        tail = (n.config.parent / "agent.log").read_text(errors="replace").splitlines()[-15:]
                        raise LocalClusterError(f"node agent {n.name} exited with {n.process.returncode}:\n" + "\n".join(tail))
                nodes = (await c.list("nodes"))["items"]
                ready = {x["metadata"]["name"] for x in nodes if x["metadata"]["name"] in want and any(
                    cond.get("type") == "Ready" and cond.get("status") == "True" for cond in (x.get("status") or {}).get("conditions") or [])
                    and x["metadata"]["name"] in want and _address_is(x, self.node_addresses()[x["metadata"]["name"]])}
                msg = f"nodes: {len(ready)}/{len(want)} Ready"
                if msg != last:
                    status(msg)
                    last = msg
                if ready == want:
                    return
                if time.monotonic() > deadline:
                    raise LocalClusterError(f"nodes not Ready within {timeout:.0f}s: {', '.join(sorted(want - ready))} "
                                            f"(see {self.data_dir / 'nodes'}/*/agent.log)")
                await asyncio.sleep(0.05)

    # ------------------------------------------------------------------ stop

    async def stop(self, timeout: float = 20.0) -> None:
        """Stop the nodes (their pods with them), the registry and the control plane; unwire."""
        for n in self.node_procs:
            if n.process is not None and n.process.poll() is None:
                n.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for n in self.node_procs:
            if n.process is None:
                continue
            while n.process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if n.process.poll() is None:
                n.process.kill()
                n.process.wait()
        for s in self._servers:
            s.close()
        for proc in (self.registry_process, self.cp_process):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.to_thread(proc.wait, 10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if self._names is not None:
            self._teardown_slot(self._names.slot)
            with contextlib.suppress(OSError):
                (self.data_dir / "lab.json").unlink()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _address_is(node: dict, address: str) -> bool:
    return any(a.get("address") == address for a in (node.get("status") or {}).get("addresses") or [])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clusterctl.local_cluster")
    sub = p.add_subparsers(dest="action", required=True)
    n = sub.add_parser("node", help="run a node agent inside its namespace (used by clusterctl up)")
    n.add_argument("config")
    n.add_argument("--gateway", required=True)
    n.add_argument("--forward", nargs="*", type=int, default=[])
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run_node(args.config, args.gateway, args.forward))
    return 0


if __name__ == "__main__":
    sys.exit(main())
