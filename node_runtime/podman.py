"""The ``podman`` runtime: the same container API as ``runtime.process``, through podman.

Chosen with ``runtime: podman`` in the agent config, for hosts that have podman. Images still
come from the agent's own store (allow-list, digest verification, shared cache): the unpacked
layers are mounted as one read-only overlay and handed to podman as ``--rootfs DIR:O`` (podman
adds its own writable layer), so podman never pulls anything. The pod's network namespace is
joined with ``--network ns:PATH``; env goes through an ``--env-file`` on tmpfs (/dev/shm), deleted
once podman has read it, so Secret values are neither on disk nor in any command line. Logs go to
the agent's log file (``--log-driver k8s-file``). Per LAB-NOTES this machine kind needs
``runtime=runc``, ``cgroup_manager=cgroupfs`` and explicit ulimits; those are passed as global
options and flags rather than relying on a containers.conf.

Not exercised here: podman is not installed on this machine kind, so only the generated argv is
unit-tested (``tests/node_runtime/test_podman.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

from node_runtime.errors import NodeRuntimeError
from node_runtime.runtime.process import ContainerConfig, ContainerState, ExitStatus

PODMAN = shutil.which("podman") or "podman"
GLOBAL_OPTS = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
ULIMITS = ["nofile=20000:20000", "nproc=32768:32768"]
LABEL_NODE = "io.clusterctl.node"


def container_name(node: str, cid: str) -> str:
    return f"clusterctl-{node}-{cid}"[:250]


def run_argv(node: str, cfg: ContainerConfig, rootfs: str, env_file: str | None) -> list[str]:
    """``podman run`` for one container (pure: unit-tested)."""
    argv = [PODMAN, *GLOBAL_OPTS, "run", "--detach", "--name", container_name(node, cfg.id),
            "--rootfs", "--pid", "private", "--ipc", "private", "--uts", "private",
            "--security-opt", "no-new-privileges", "--log-driver", "k8s-file"]
    if cfg.log_path:
        argv += ["--log-opt", f"path={cfg.log_path}"]
    argv += ["--network", f"ns:{cfg.netns}" if cfg.netns else "host"]
    if cfg.hostname:
        argv += ["--hostname", cfg.hostname[:63]]
    for u in ULIMITS:
        argv += ["--ulimit", u]
    if env_file:
        argv += ["--env-file", env_file]
    argv += ["--workdir", cfg.cwd or "/"]
    if cfg.uid is not None or cfg.gid is not None:
        argv += ["--user", f"{cfg.uid if cfg.uid is not None else 0}:{cfg.gid if cfg.gid is not None else (cfg.uid or 0)}"]
    if cfg.memory_bytes:
        argv += ["--memory", str(cfg.memory_bytes), "--memory-swap", str(cfg.memory_bytes)]
    if cfg.cpu_millis:
        argv += ["--cpus", f"{cfg.cpu_millis / 1000:g}"]
    if cfg.pids_max:
        argv += ["--pids-limit", str(cfg.pids_max)]
    for m in cfg.mounts:
        if m.get("type") == "tmpfs":
            argv += ["--tmpfs", f"{m['target']}:{m.get('options') or 'mode=755'}"]
        else:
            argv += ["--volume", f"{m['source']}:{m['target']}:{'ro' if m.get('readonly') else 'rw'},rbind"]
    argv += ["--label", f"{LABEL_NODE}={node}"]
    for k, v in sorted(cfg.labels.items()):
        argv += ["--label", f"{k}={v}"]
    # with the --rootfs flag the first positional is the exploded rootfs (":O" = overlay, podman
    # keeps its own writable upper layer), then the command exactly as resolved from the pod spec
    argv += ["--", f"{rootfs}:O", *cfg.argv]
    return argv


def env_file_text(env: dict[str, str]) -> str:
    for k, v in env.items():
        if "\n" in v:
            raise NodeRuntimeError(f"env {k}: values with newlines cannot go through podman's --env-file")
    return "".join(f"{k}={v}\n" for k, v in env.items())


class PodmanRuntime:
    name = "podman"

    def __init__(self, *, node_name: str, state_dir: str | Path):
        self.node_name = node_name
        self.state_dir = Path(state_dir) / "podman"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._states: dict[str, ContainerState] = {}

    async def _podman(self, *args: str, check: bool = True) -> str:
        proc = await asyncio.create_subprocess_exec(PODMAN, *GLOBAL_OPTS, *args, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if check and proc.returncode != 0:
            raise NodeRuntimeError(f"podman {' '.join(args[:2])} failed: {err.decode(errors='replace').strip()}")
        return out.decode()

    async def start(self, cfg: ContainerConfig) -> ContainerState:
        if not shutil.which("podman"):
            raise NodeRuntimeError("runtime podman: podman is not installed on this node")
        cdir = self.state_dir / cfg.id
        cdir.mkdir(parents=True, exist_ok=True)
        lower = cdir / "lower"
        lower.mkdir(exist_ok=True)
        if not os.path.ismount(lower):
            opts = "lowerdir=" + ":".join(reversed(cfg.layers)) if len(cfg.layers) > 1 else None
            if opts:
                r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(lower)],
                                   capture_output=True, text=True)
                if r.returncode != 0:
                    raise NodeRuntimeError(f"cannot mount image layers for {cfg.id}: {r.stderr.strip()}")
        rootfs = str(lower) if len(cfg.layers) > 1 else cfg.layers[0]
        env_path = Path("/dev/shm") / f"clusterctl-{self.node_name}-{cfg.id}.env"
        fd = os.open(env_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(env_file_text(cfg.env))
        try:
            await self._podman(*run_argv(self.node_name, cfg, rootfs, str(env_path))[1 + len(GLOBAL_OPTS):])
        finally:
            env_path.unlink(missing_ok=True)
        info = json.loads(await self._podman("inspect", container_name(self.node_name, cfg.id)))[0]
        state = ContainerState(cfg.id, int(info["State"]["Pid"]), 0, time.time(), cfg.log_path, cfg.labels, None)
        (cdir / "state.json").write_text(json.dumps(asdict(state)))
        self._states[cfg.id] = state
        return state

    async def wait(self, cid: str) -> ExitStatus:
        name = container_name(self.node_name, cid)
        await self._podman("wait", name, check=False)
        info = json.loads(await self._podman("inspect", name))[0]["State"]
        code = int(info.get("ExitCode", 137))
        if info.get("OOMKilled"):
            return ExitStatus(137, "OOMKilled", time.time())
        return ExitStatus(code, "Completed" if code == 0 else "Error", time.time(), info.get("Error", ""))

    async def stop(self, cid: str, grace: float, *, clock=asyncio.sleep) -> None:
        await self._podman("stop", "--time", str(max(0, int(grace))), container_name(self.node_name, cid), check=False)

    def kill(self, cid: str) -> None:
        subprocess.run([PODMAN, *GLOBAL_OPTS, "kill", container_name(self.node_name, cid)], capture_output=True)

    def is_running(self, cid: str) -> bool:
        r = subprocess.run([PODMAN, *GLOBAL_OPTS, "inspect", "--format", "{{.State.Running}}", container_name(self.node_name, cid)],
                           capture_output=True, text=True)
        return r.returncode == 0 and r.stdout.strip() == "true"

    async def remove(self, cid: str) -> None:
        await self._podman("rm", "--force", container_name(self.node_name, cid), check=False)
        self._states.pop(cid, None)
        lower = self.state_dir / cid / "lower"
        if os.path.ismount(lower):
            subprocess.run(["umount", "-l", str(lower)], capture_output=True)
        shutil.rmtree(self.state_dir / cid, ignore_errors=True)

    def adopt(self) -> list[ContainerState]:
        alive = []
        for sfile in self.state_dir.glob("*/state.json"):
            try:
                state = ContainerState(**json.loads(sfile.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            self._states[state.id] = state
            if shutil.which("podman") and self.is_running(state.id):
                alive.append(state)
        return alive

    def known(self) -> dict[str, ContainerState]:
        return dict(self._states)

    def cgroup(self, cid: str):
        return None

    def container_pid(self, cid: str) -> int | None:
        state = self._states.get(cid)
        return state.pid if state else None

    def exec_argv(self, cid: str, argv: list[str]) -> list[str]:
        return [PODMAN, *GLOBAL_OPTS, "exec", "--interactive", container_name(self.node_name, cid), *argv]
