"""cgroup limits and accounting for containers, on cgroup v1 or v2 (whichever the host has).

Every cgroup this agent creates lives under ``<own cgroup>/clusterctl-<node>/`` in each hierarchy,
so several agents on one machine (the lab, ``clusterctl up``) never collide, and the whole tree
sits inside whatever limit the agent itself runs under. On v1 we use the memory, cpu, cpuacct and
pids controllers (each may be mounted alone or co-mounted); on v2 the unified tree.
"""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from node_runtime.errors import NodeRuntimeError

CFS_PERIOD_US = 100_000
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """Map controller name (or "" for v2) -> this process's cgroup path."""
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            out[""] = path
        for c in controllers.split(","):
            if c:
                out[c] = path
    return out


def _mounts(proc_mounts: str) -> dict[str, Path]:
    """Map controller (or "" for cgroup2) -> mount point."""
    out: dict[str, Path] = {}
    for line in proc_mounts.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        point, fstype, opts = parts[1], parts[2], parts[3].split(",")
        if fstype == "cgroup2":
            out.setdefault("", Path(point))
        elif fstype == "cgroup":
            for o in opts:
                if o in ("memory", "cpu", "cpuacct", "pids", "cpuset", "freezer"):
                    out.setdefault(o, Path(point))
    return out


@dataclass
class Cgroup:
    """One container's (or pod's) cgroup across the hierarchies that matter."""

    version: int
    paths: dict[str, Path]   # controller -> directory ("unified" for v2)
    procs_files: list[Path] = field(default_factory=list)

    def _read(self, controller: str, name: str) -> str | None:
        p = self.paths.get(controller)
        if p is None:
            return None
        try:
            return (p / name).read_text()
        except OSError:
            return None

    def oom_killed(self) -> bool:
        if self.version == 2:
            text = self._read("unified", "memory.events") or ""
            m = re.search(r"^oom_kill (\d+)", text, re.M)
            return bool(m and int(m.group(1)) > 0)
        text = self._read("memory", "memory.oom_control") or ""
        m = re.search(r"^oom_kill (\d+)", text, re.M)
        if m:
            return int(m.group(1)) > 0
        failcnt = self._read("memory", "memory.failcnt")
        return bool(failcnt and int(failcnt) > 0)

    def memory_bytes(self) -> int:
        if self.version == 2:
            v = self._read("unified", "memory.current")
        else:
            # the working set as kubelet computes it: usage minus inactive file cache (anon RSS
            # alone reads 0 for a process whose pages are all file-backed)
            usage = self._read("memory", "memory.usage_in_bytes")
            stat = self._read("memory", "memory.stat") or ""
            m = re.search(r"^total_inactive_file (\d+)", stat, re.M)
            if usage and usage.strip().isdigit():
                return max(0, int(usage) - (int(m.group(1)) if m else 0))
            return 0
        return int(v) if v and v.strip().isdigit() else 0

    def cpu_usage_ns(self) -> int:
        if self.version == 2:
            text = self._read("unified", "cpu.stat") or ""
            m = re.search(r"^usage_usec (\d+)", text, re.M)
            return int(m.group(1)) * 1000 if m else 0
        v = self._read("cpuacct", "cpuacct.usage") or self._read("cpu", "cpuacct.usage")
        return int(v) if v and v.strip().isdigit() else 0

    def pids(self) -> list[int]:
        seen: set[int] = set()
        for f in self.procs_files:
            try:
                seen.update(int(x) for x in f.read_text().split())
            except OSError:
                pass
        return sorted(seen)

    def kill_all(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def destroy(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.kill_all()
            busy = False
            for p in sorted(set(self.paths.values()), key=lambda x: -len(str(x))):
                try:
                    if p.exists():
                        p.rmdir()
                except OSError:
                    busy = True
            if not busy or time.monotonic() > deadline:
                return
            time.sleep(0.02)


@dataclass(frozen=True)
class CgroupPlan:
    """A container cgroup to be made: directories to create, then (file, value, optional) writes."""

    cgroup: Cgroup
    dirs: list[Path]
    writes: list[tuple[Path, str, bool]]


class CgroupManager:
    """Creates per-container cgroups under this agent's own subtree."""

    def __init__(self, node_name: str, *, proc_cgroup: str | None = None, proc_mounts: str | None = None):
        self.node_name = _SAFE.sub("_", node_name)
        proc_cgroup = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
        proc_mounts = proc_mounts if proc_mounts is not None else Path("/proc/self/mounts").read_text()
        own, mounts = _own_paths(proc_cgroup), _mounts(proc_mounts)
        v1 = [c for c in ("memory", "cpu", "cpuacct", "pids") if c in mounts and c in own]
        self.version = 1 if "memory" in v1 else (2 if "" in mounts else 0)
        self.bases: dict[str, Path] = {}
        if self.version == 1:
            for c in v1:
                self.bases[c] = mounts[c] / own[c].lstrip("/") / f"clusterctl-{self.node_name}"
        elif self.version == 2:
            self.bases["unified"] = mounts[""] / own.get("", "/").lstrip("/") / f"clusterctl-{self.node_name}"
            try:
                controllers = (mounts[""] / "cgroup.controllers").read_text().split()
            except OSError:
                controllers = []
            if "memory" not in controllers:
                self.version = 0  # a v2 tree without memory/cpu (hybrid hosts): no limits possible
                self.bases = {}

    @property
    def available(self) -> bool:
        return self.version in (1, 2)

    def plan(self, name: str, *, memory_bytes: int | None = None, cpu_millis: int | None = None,
             pids_max: int | None = None) -> CgroupPlan:
        """What ``create`` would do, without touching the filesystem: the compiled container shim
        carries it out itself (in the container's own process, so a slow cgroup mkdir — an RCU
        sync in the kernel — never holds up the agent)."""
        if not self.available:
            raise NodeRuntimeError("no usable cgroup hierarchy (need cgroup v1 memory/cpu or v2 with memory)")
        leaf = _SAFE.sub("_", name)
        paths = {controller: base / leaf for controller, base in self.bases.items()}
        writes: list[tuple[Path, str, bool]] = []     # (file, value, only if the file exists)
        if self.version == 1:
            if memory_bytes:
                writes.append((paths["memory"] / "memory.limit_in_bytes", str(memory_bytes), False))
                # swap off for the container, so the limit is a real limit (OOM -> exit 137)
                writes.append((paths["memory"] / "memory.memsw.limit_in_bytes", str(memory_bytes), True))
            if cpu_millis and "cpu" in paths:
                writes.append((paths["cpu"] / "cpu.cfs_period_us", str(CFS_PERIOD_US), False))
                writes.append((paths["cpu"] / "cpu.cfs_quota_us", str(max(1000, cpu_millis * CFS_PERIOD_US // 1000)), False))
            if pids_max and "pids" in paths:
                writes.append((paths["pids"] / "pids.max", str(pids_max), False))
        else:
            u = paths["unified"]
            if memory_bytes:
                writes.append((u / "memory.max", str(memory_bytes), False))
                writes.append((u / "memory.swap.max", "0", True))
            if cpu_millis:
                writes.append((u / "cpu.max", f"{max(1000, cpu_millis * CFS_PERIOD_US // 1000)} {CFS_PERIOD_US}", False))
            if pids_max:
                writes.append((u / "pids.max", str(pids_max), False))
        cg = Cgroup(self.version, paths, [d / "cgroup.procs" for d in paths.values()])
        return CgroupPlan(cg, list(paths.values()), writes)

    def create(self, name: str, *, memory_bytes: int | None = None, cpu_millis: int | None = None,
               pids_max: int | None = None) -> Cgroup:
        plan = self.plan(name, memory_bytes=memory_bytes, cpu_millis=cpu_millis, pids_max=pids_max)
        for d in plan.dirs:
            try:
                d.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise NodeRuntimeError(f"cannot create cgroup {d}: {exc}") from exc
        try:
            for path, value, optional in plan.writes:
                if optional and not path.exists():
                    continue
                path.write_text(value)
        except OSError as exc:
            plan.cgroup.destroy()
            raise NodeRuntimeError(f"cannot set cgroup limits for {name}: {exc}") from exc
        return plan.cgroup

    def open(self, name: str) -> Cgroup | None:
        """An existing container cgroup (adoption after an agent restart)."""
        leaf = _SAFE.sub("_", name)
        paths = {c: b / leaf for c, b in self.bases.items() if (b / leaf).is_dir()}
        if not paths:
            return None
        return Cgroup(self.version, paths, [p / "cgroup.procs" for p in paths.values()])

    def list(self) -> list[str]:
        names: set[str] = set()
        for base in self.bases.values():
            if base.is_dir():
                names.update(p.name for p in base.iterdir() if p.is_dir())
        return sorted(names)

    def cleanup(self) -> None:
        """Remove this node's (empty) cgroup subtree: call when the agent is torn down for good."""
        for name in self.list():
            cg = self.open(name)
            if cg:
                cg.destroy()
        for base in self.bases.values():
            try:
                base.rmdir()
            except OSError:
                pass
