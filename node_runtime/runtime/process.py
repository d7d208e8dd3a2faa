"""The built-in ``process`` runtime: each container is an isolated process tree on this node.

A container is a shim that stays as its parent (and reports its exit status) and, as PID 1 of
new PID/mount/UTS/IPC namespaces, the container's setup (overlayfs rootfs over the image's
unpacked layers with a per-container upper dir, /proc, /dev, /sys, volumes, pivot_root, caps,
user) ending in an exec of the workload. Two implementations, same semantics:

- ``ccl-shim spec FD`` (default): the compiled shim (``shim.py`` builds ``shim/ccl-shim.c`` at
  agent start) does everything in C from a NUL-separated spec (``c_spec``) in a memfd;
- fallback when no C compiler is present: util-linux ``unshare --fork --kill-child`` running
  ``launcher.py`` (from a precompiled ``.pyc``, spec marshalled in a memfd).

The agent watches each shim through a pidfd, so hundreds of containers cost no threads.

State lives in ``<state_dir>/containers/<id>/`` (``state.json``, the overlay upper/work dirs, the
spec's names for debugging). After an agent restart ``adopt()`` finds containers still running
(the shim's pid + process start time, so a reused pid is never mistaken for ours) instead of
starting duplicates; the exit code of an adopted container is not knowable (it is not our
child), so it is reported as 137 with reason ``Unknown`` unless the cgroup shows an OOM kill.

Reduced mode (not root, or no namespaces/overlayfs): see ``check_capabilities``; the agent then
runs plain processes without isolation and says so in the Node's conditions.
"""

from __future__ import annotations

import asyncio
import json
import marshal
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from node_runtime.errors import NodeRuntimeError
from node_runtime.runtime.cgroups import Cgroup, CgroupManager
from node_runtime.runtime.shim import DEFAULT_COMPILERS, SHARED_CACHE, build_shim

LAUNCHER = Path(__file__).with_name("launcher.py")


def launcher_program(state_dir: Path) -> str:
    """The launcher compiled once per agent (a script is otherwise recompiled by every container)."""
    import py_compile
    src = LAUNCHER
    target = state_dir / f"launcher-{int(src.stat().st_mtime_ns)}.pyc"
    if not target.exists():
        tmp = state_dir / f".launcher-{os.getpid()}.pyc"
        try:
            py_compile.compile(str(src), cfile=str(tmp), doraise=True)
            os.replace(tmp, target)
        except (OSError, py_compile.PyCompileError):
            return str(src)
    return str(target)
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
_SHIM_SIGNAL_NOTE = "unshare: sigprocmask unblock failed"


@dataclass
class ContainerConfig:
    id: str                                  # unique and filesystem-safe: <pod uid>_<name>_<attempt>
    layers: list[str]                        # unpacked image layer dirs, bottom first
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    hostname: str = ""
    uid: int | None = None
    gid: int | None = None
    netns: str | None = None                 # path of the pod's network namespace
    mounts: list[dict] = field(default_factory=list)   # {source,target,type:bind|tmpfs,readonly,options}
    memory_bytes: int | None = None
    cpu_millis: int | None = None
    pids_max: int | None = None
    log_path: str = ""
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerState:
    id: str
    pid: int                     # the unshare shim (host pid namespace)
    start_ticks: int             # /proc/<pid>/stat field 22, guards against pid reuse
    started_at: float
    log_path: str
    labels: dict[str, str]
    cgroup: str | None


@dataclass(frozen=True)
class ExitStatus:
    code: int
    reason: str                  # Completed | Error | OOMKilled | Unknown
    finished_at: float
    message: str = ""


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def check_capabilities() -> str | None:
    """None when full isolation is possible, else why not (the agent falls back to reduced mode)."""
    if os.geteuid() != 0:
        return "not running as root: containers run as plain processes without namespaces, rootfs or limits"
    if not os.path.exists(UNSHARE):
        return "unshare (util-linux) not found"
    try:
        fs = Path("/proc/filesystems").read_text()
    except OSError:
        fs = ""
    if "overlay" not in fs:
        return "the kernel has no overlayfs"
    return None


class ProcessRuntime:
    name = "process"
    start_timeout = 60.0   # how long start() waits for the launcher to report the workload started

    def __init__(self, *, node_name: str, state_dir: str | Path, cgroups: CgroupManager | None = None,
                 compilers: Sequence[str] = DEFAULT_COMPILERS, shim_cache: Path | None = SHARED_CACHE):
        self.node_name = node_name
        self.state_dir = Path(state_dir) / "containers"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.cgroups = cgroups if cgroups is not None else CgroupManager(node_name)
        #: the compiled shim, or None: util-linux unshare + the Python launcher (no C compiler here)
        self.shim: Path | None = build_shim(self.state_dir, compilers=compilers, shared_cache=shim_cache)
        self._launcher = launcher_program(self.state_dir) if self.shim is None else ""
        self._procs: dict[str, subprocess.Popen] = {}
        self._states: dict[str, ContainerState] = {}

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self, cfg: ContainerConfig) -> ContainerState:
        # cgroup mkdirs (an RCU sync each in the kernel), file writes and the fork+exec take tens of
        # milliseconds under load: done in a worker thread so a burst of starts never stalls the
        # agent's event loop (status writes, probes, other pods).
        proc, state, started_r = await asyncio.to_thread(self._spawn, cfg)
        self._procs[cfg.id] = proc
        self._states[cfg.id] = state
        # The container counts as started when the launcher has set everything up and is about
        # to exec the workload (it writes one byte to this pipe), as runc's ``start`` does; EOF
        # without the byte means setup failed and wait() will say how.
        try:
            if await _read_byte(started_r, self.start_timeout):
                state.started_at = time.time()
                (self.state_dir / cfg.id / "state.json").write_text(json.dumps(asdict(state)))
        finally:
            os.close(started_r)
        return state

    def _spawn(self, cfg: ContainerConfig) -> tuple[subprocess.Popen, ContainerState, int]:
        if any("\0" in item for item in (*cfg.argv, *cfg.env, *cfg.env.values())):
            raise NodeRuntimeError(f"container {cfg.id}: a NUL character in the command or environment")
        cdir = self.state_dir / cfg.id
        if cdir.exists():
            shutil.rmtree(cdir, True)
        cdir.mkdir(parents=True)
        cgroup = None
        plan = None
        if self.cgroups.available:
            limits = dict(memory_bytes=cfg.memory_bytes, cpu_millis=cfg.cpu_millis, pids_max=cfg.pids_max)
            if self.shim:   # the shim makes it, from the container's own process
                plan = self.cgroups.plan(cfg.id, **limits)
                cgroup = plan.cgroup
            else:
                cgroup = self.cgroups.create(cfg.id, **limits)
        spec = {
            "rootfs": {"lower": list(reversed(cfg.layers)), "upper": str(cdir / "upper"),
                       "work": str(cdir / "work"), "merged": str(cdir / "rootfs")},
            "netns": cfg.netns,
            "hostname": cfg.hostname[:63],
            "mounts": cfg.mounts,
            "argv": cfg.argv,
            "env": cfg.env,
            "cwd": cfg.cwd or "/",
            "uid": cfg.uid,
            "gid": cfg.gid,
            "cgroup_procs": [str(p) for p in (cgroup.procs_files if cgroup else [])],
        }
        if plan is not None:
            spec["cgroup_dirs"] = [str(d) for d in plan.dirs]
            spec["cgroup_writes"] = [(str(p), value, optional) for p, value, optional in plan.writes]
        if not cfg.layers:
            spec["rootfs"] = {"merged": str(cdir / "rootfs")}
        # The full spec (env may hold Secret values) goes to the launcher through an anonymous
        # memfd, never a file; spec.json on disk keeps the env's names only, for debugging.
        (cdir / "spec.json").write_text(json.dumps(dict(spec, env=sorted(cfg.env))))
        started_r, started_w = os.pipe()
        spec["started_fd"] = started_w
        spec_fd = os.memfd_create(f"spec-{cfg.id}"[:200], 0)
        os.write(spec_fd, c_spec(spec) if self.shim else marshal.dumps(spec))
        os.lseek(spec_fd, 0, os.SEEK_SET)
        if self.shim:
            argv = [str(self.shim), "spec", str(spec_fd)]
        else:
            argv = [UNSHARE, "--pid", "--fork", "--kill-child", "--mount", "--uts", "--ipc", "--propagation", "private",
                    sys.executable, "-S", "-I", self._launcher, f"fd:{spec_fd}"]
        log_path = cfg.log_path or str(cdir / "container.log")
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd, close_fds=True, pass_fds=(spec_fd, started_w),
                start_new_session=True, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
            )
        except OSError as exc:
            if cgroup:
                cgroup.destroy()
            os.close(started_r)
            raise NodeRuntimeError(f"cannot start container {cfg.id}: {exc}") from exc
        finally:
            os.close(log_fd)
            os.close(spec_fd)
            os.close(started_w)
        state = ContainerState(cfg.id, proc.pid, _start_ticks(proc.pid) or 0, time.time(), log_path,
                               cfg.labels, cfg.id if cgroup else None)
        (cdir / "state.json").write_text(json.dumps(asdict(state)))
        return proc, state, started_r

    async def wait(self, cid: str) -> ExitStatus:
        """Wait for the container to exit (works for adopted containers too)."""
        state = self._states[cid]
        proc = self._procs.get(cid)
        code: int | None = None
        if proc is not None:
            code = await _wait_child(proc)
        else:
            await _wait_pid(state.pid, state.start_ticks)
        cg = self.cgroups.open(state.cgroup) if state.cgroup else None
        oom = bool(cg and cg.oom_killed())
        if code == 1 and self.shim is None and _last_line(state.log_path).startswith(_SHIM_SIGNAL_NOTE):
            # util-linux unshare cannot re-raise some signals its child died of; it exits 1 and
            # says so. The container was killed by a signal: report it as Kubernetes would.
            code = 137
        if code is None:
            code = 137
            reason = "OOMKilled" if oom else "Unknown"
        elif oom and code != 0:
            code, reason = 137, "OOMKilled"
        else:
            if code < 0:
                code = 128 + (-code)
            reason = "Completed" if code == 0 else "Error"
        message = ""
        if code in (125, 126, 127):
            message = _last_line(state.log_path)
        return ExitStatus(code, reason, time.time(), message)

    def container_pid(self, cid: str) -> int | None:
        """Host pid of the container's PID 1 (the shim's child); None once the shim has exited.

        The shim's pid is only ours while the shim runs (or is an unreaped zombie of this
        process): after that the kernel hands the number to someone else (pid_max is 32768 and a
        busy node forks thousands of processes), and the "children" of that pid are strangers."""
        state = self._states.get(cid)
        if state is None or not self.is_running(cid):
            return None
        try:
            children = Path(f"/proc/{state.pid}/task/{state.pid}/children").read_text().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    async def stop(self, cid: str, grace: float, *, clock=asyncio.sleep) -> None:
        """SIGTERM the container's PID 1, SIGKILL everything after ``grace`` seconds."""
        state = self._states.get(cid)
        if state is None:
            return
        target = self.container_pid(cid)
        if target:
            try:
                os.kill(target, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + max(0.0, grace)
        while self.is_running(cid) and time.monotonic() < deadline:
            await clock(0.05)
        if self.is_running(cid):
            self.kill(cid)

    def kill(self, cid: str) -> None:
        """SIGKILL the container (its PID 1 and the shim) and everything left in its cgroup.

        The shim is only signalled while ``is_running`` says its pid is still the shim's (an
        exited, reaped shim's pid may belong to an unrelated process by now)."""
        state = self._states.get(cid)
        if state is None:
            return
        for pid in ((self.container_pid(cid), state.pid) if self.is_running(cid) else ()):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        cg = self.cgroups.open(state.cgroup) if state.cgroup else None
        if cg:
            cg.kill_all()

    def is_running(self, cid: str) -> bool:
        state = self._states.get(cid)
        if state is None:
            return False
        proc = self._procs.get(cid)
        if proc is not None:
            return proc.poll() is None
        return _start_ticks(state.pid) == state.start_ticks

    async def remove(self, cid: str) -> None:
        """Forget a stopped container: its cgroup, rootfs upper dir and state (logs are kept)."""
        if self.is_running(cid):
            self.kill(cid)
            await asyncio.sleep(0)
        state = self._states.pop(cid, None)
        proc = self._procs.pop(cid, None)
        if proc is not None and proc.poll() is None:
            await asyncio.to_thread(proc.wait, 5)
        if state and state.cgroup:
            cg = self.cgroups.open(state.cgroup)
            if cg:
                await asyncio.to_thread(cg.destroy)
        await asyncio.to_thread(shutil.rmtree, self.state_dir / cid, True)

    def adopt(self) -> list[ContainerState]:
        """Containers from an earlier agent run that are still alive; dead ones are cleaned."""
        alive: list[ContainerState] = []
        for sfile in self.state_dir.glob("*/state.json"):
            try:
                state = ContainerState(**json.loads(sfile.read_text()))
            except (OSError, ValueError, TypeError):
                continue
            if _start_ticks(state.pid) == state.start_ticks:
                self._states[state.id] = state
                alive.append(state)
            else:
                self._states[state.id] = state
        return alive

    def known(self) -> dict[str, ContainerState]:
        return dict(self._states)

    def cgroup(self, cid: str) -> Cgroup | None:
        state = self._states.get(cid)
        return self.cgroups.open(state.cgroup) if state and state.cgroup else None

    def exec_argv(self, cid: str, argv: list[str]) -> list[str]:
        """The host command that runs ``argv`` inside the running container's namespaces and root."""
        pid = self.container_pid(cid)
        if pid is None:
            raise NodeRuntimeError(f"container {cid} is not running")
        return [NSENTER, "-t", str(pid), "-m", "-u", "-i", "-n", "-p", "-r", "-w", "--", *argv]


def c_spec(spec: dict) -> bytes:
    """The launcher spec in ``ccl-shim``'s format: NUL-terminated strings, each key followed by
    its fixed number of values (``parse_spec`` in ccl-shim.c)."""
    items: list[str] = []
    rootfs = spec["rootfs"]
    for lower in rootfs.get("lower") or []:
        items += ["lower", lower]
    if rootfs.get("upper"):
        items += ["upper", rootfs["upper"], "work", rootfs["work"]]
    items += ["merged", rootfs["merged"]]
    for key in ("netns", "hostname"):
        if spec.get(key):
            items += [key, spec[key]]
    for directory in spec.get("cgroup_dirs") or []:
        items += ["cgroup_dir", directory]
    for path, value, optional in spec.get("cgroup_writes") or []:
        items += ["cgroup_write", path, value, "1" if optional else "0"]
    for procs in spec.get("cgroup_procs") or []:
        items += ["cgroup_procs", procs]
    for m in spec.get("mounts") or []:
        items += ["mount", m.get("type") or "bind", m.get("source") or "", m["target"],
                  "1" if m.get("readonly") else "0", m.get("options") or ""]
    items += [x for arg in spec["argv"] for x in ("arg", arg)]
    items += [x for k, v in (spec.get("env") or {}).items() for x in ("env", f"{k}={v}")]
    items += ["cwd", spec.get("cwd") or "/"]
    for key in ("uid", "gid", "started_fd"):
        if spec.get(key) is not None:
            items += [key, str(int(spec[key]))]
    if any("\0" in item for item in items):
        raise NodeRuntimeError("container spec has a NUL character in a command, variable or path")
    return b"".join(item.encode("utf-8", "surrogateescape") + b"\0" for item in items)


async def _read_byte(fd: int, timeout: float) -> bool:
    """True when one byte arrives on ``fd``; False on EOF or timeout."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(fd, 1)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not done.done():
            done.set_result(bool(data))

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        return await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)


async def _until_readable(fd: int) -> None:
    """Wait until a pidfd becomes readable (its process exited), then close it."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_reader(fd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def _wait_child(proc: subprocess.Popen) -> int:
    if proc.poll() is not None:
        return proc.returncode
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:
        while proc.poll() is None:
            await asyncio.sleep(0.05)
        return proc.returncode
    await _until_readable(fd)
    proc.wait()
    return proc.returncode


async def _wait_pid(pid: int, ticks: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return
    if _start_ticks(pid) != ticks:
        os.close(fd)
        return
    await _until_readable(fd)


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""
    except OSError:
        return ""
