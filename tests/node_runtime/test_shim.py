"""The compiled container shim (``ccl-shim``): built from source, exact exit status, signals, fallback.

The shim's ``exec`` mode runs a plain program as PID 1 of the new namespaces, which isolates the
parent's duties (exit status, signal forwarding, parent death) from the container setup; the
``spec`` mode (the full setup in C) is what every test in ``test_process_runtime.py`` runs.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from node_runtime.errors import NodeRuntimeError
from node_runtime.runtime.process import ContainerConfig, ProcessRuntime, c_spec
from node_runtime.runtime.shim import SHIM_NAME, SOURCE, build_shim
from tests.node_runtime.test_process_runtime import cfg, layers, run_to_exit, runtime  # noqa: F401 - fixtures

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root (CI runs as root)")


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    built = build_shim(tmp_path_factory.mktemp("shim"))
    assert built is not None, "cc is on this machine kind: the shim must build"
    return built


def no_core() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def run_shim(shim: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([str(shim), "exec", *argv], capture_output=True, text=True, timeout=timeout, preexec_fn=no_core)


def child_of(pid: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.01)
    raise AssertionError(f"shim {pid} has no child")


def test_build_is_cached_by_source_hash(tmp_path, monkeypatch):
    first = build_shim(tmp_path / "state", shared_cache=tmp_path / "cache")
    assert first is not None and first.name == SHIM_NAME and os.access(first, os.X_OK)
    mtime = first.stat().st_mtime_ns
    assert build_shim(tmp_path / "state", compilers=(), shared_cache=None) == first  # no compiler needed again
    assert first.stat().st_mtime_ns == mtime
    # another agent on the machine copies the shared build instead of compiling
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "musl-gcc").symlink_to("/bin/false")   # a compiler that would fail: not run
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    other_agent = build_shim(tmp_path / "state2", compilers=("musl-gcc",), shared_cache=tmp_path / "cache")
    assert other_agent is not None and other_agent.read_bytes() == first.read_bytes()
    changed = tmp_path / "changed.c"
    changed.write_text(SOURCE.read_text() + "\n/* another version */\n")
    other = build_shim(tmp_path / "state", source=changed, shared_cache=None)
    assert other is not None and other != first and other.parent.parent == first.parent.parent


def test_a_shim_others_can_write_is_not_trusted(tmp_path):
    first = build_shim(tmp_path / "state", shared_cache=None)
    assert first is not None
    os.chmod(first, 0o777)  # e.g. replaced by someone else: it would become every container's parent
    again = build_shim(tmp_path / "state", shared_cache=None)
    assert again == first and (again.stat().st_mode & 0o777) == 0o755  # rebuilt, not reused
    os.chmod(first, 0o777)
    assert build_shim(tmp_path / "state", compilers=(), shared_cache=None) is None  # and never run as it is


def test_glibc_build_works_too(tmp_path):
    glibc = build_shim(tmp_path, compilers=("cc",), shared_cache=None)
    assert glibc is not None
    assert run_shim(glibc, "/bin/sh", "-c", "echo pid=$$; exit 42").returncode == 42


def test_the_shim_stays_small(shim):
    """~0.08 MB resident with musl (Debian's musl-tools, which .ci/setup installs); a glibc static
    build would be ~0.7 MB, util-linux unshare ~1.45 MB, per container."""
    proc = subprocess.Popen([str(shim), "exec", "/bin/sleep", "30"], preexec_fn=no_core)
    try:
        child_of(proc.pid)
        rss_kb = int(next(l for l in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                          if l.startswith("VmRSS:")).split()[1])
        assert rss_kb < 256, f"ccl-shim RSS {rss_kb} kB"
    finally:
        proc.kill()
        proc.wait(30)


def test_no_compiler_or_failing_compiler_gives_no_shim(tmp_path):
    assert build_shim(tmp_path / "a", compilers=(), shared_cache=None) is None
    assert build_shim(tmp_path / "b", compilers=("no-such-cc-here",), shared_cache=None) is None
    assert build_shim(tmp_path / "c", compilers=("false",), shared_cache=None) is None  # a compiler that fails


def test_pid1_and_exit_code_exact(shim):
    done = run_shim(shim, "/bin/sh", "-c", "echo pid=$$; exit 42")
    assert done.stdout.strip() == "pid=1"
    assert done.returncode == 42
    assert run_shim(shim, "/bin/true").returncode == 0


def test_death_by_signal_is_reraised(shim):
    # a real SIGSEGV kills even a PID 1; the shim dies of the same signal (util-linux exited 1)
    done = run_shim(shim, sys.executable, "-S", "-c", "import ctypes; ctypes.string_at(0)")
    assert done.returncode == -signal.SIGSEGV, done.stderr
    proc = subprocess.Popen([str(shim), "exec", "/bin/sleep", "30"], preexec_fn=no_core)
    os.kill(child_of(proc.pid), signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def test_sigterm_and_sigint_are_forwarded(shim):
    script = "trap 'echo got-$1; exit 3' TERM INT; echo ready; while :; do sleep 0.05; done"
    for sig, name in ((signal.SIGTERM, "TERM"), (signal.SIGINT, "INT")):
        proc = subprocess.Popen([str(shim), "exec", "/bin/sh", "-c", script.replace("$1", name)],
                                stdout=subprocess.PIPE, text=True, preexec_fn=no_core)
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(sig)
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, out.strip()) == (3, f"got-{name}")


def test_workload_starts_with_default_signals(shim):
    """A shell's ``&`` starts the agent with SIGINT/SIGQUIT ignored: that must not reach containers."""
    def ignoring():
        no_core()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGQUIT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    done = subprocess.run([str(shim), "exec", "/bin/grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"],
                          capture_output=True, text=True, timeout=60, preexec_fn=ignoring)
    assert done.stdout.split() == ["SigBlk:", "0000000000000000", "SigIgn:", "0000000000000000"], done.stdout


def test_container_dies_with_its_shim(shim):
    proc = subprocess.Popen([str(shim), "exec", "/bin/sleep", "30"], preexec_fn=no_core)
    child = child_of(proc.pid)
    proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{child}").exists()


def test_shim_holds_no_descriptor_of_the_container(shim):
    r, w = os.pipe()
    proc = subprocess.Popen([str(shim), "exec", "/bin/sleep", "30"], pass_fds=(w,), preexec_fn=no_core)
    try:
        child_of(proc.pid)
        deadline = time.monotonic() + 30
        while True:  # the shim closes them right after the fork
            fds = {int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd")} - {0, 1, 2}
            if (w not in fds and len(fds) == 1) or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        assert w not in fds and len(fds) == 1, fds  # the one left: its own end of the guard pipe
    finally:
        proc.kill()
        proc.wait(30)
        os.close(r)
        os.close(w)


def test_c_spec_refuses_nul():
    with pytest.raises(NodeRuntimeError):
        c_spec({"rootfs": {"merged": "/x"}, "argv": ["a\0b"], "env": {}})


@pytest.fixture
def fallback_runtime(tmp_path):
    rt = ProcessRuntime(node_name=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state", compilers=(), shim_cache=None)
    yield rt
    for cid in list(rt.known()):
        rt.kill(cid)
    rt.cgroups.cleanup()


async def test_fallback_without_compiler_runs_unshare_and_the_python_launcher(fallback_runtime, layers, tmp_path):  # noqa: F811
    assert fallback_runtime.shim is None
    c = cfg("fb", layers, ["sh", "-c", "hostname; echo pid=$$; cat /www/index.html; exit 5"], tmp_path)
    await fallback_runtime.start(c)
    assert Path(f"/proc/{fallback_runtime.known()['fb'].pid}/comm").read_text().strip() == "unshare"
    status = await asyncio.wait_for(fallback_runtime.wait(c.id), 60)
    await fallback_runtime.remove(c.id)
    log = Path(c.log_path).read_text()
    assert (status.code, status.reason) == (5, "Error")
    assert log.split()[:2] == ["web-1", "pid=1"] and "hello from the rootfs" in log


async def test_compiled_shim_is_the_container_parent_and_reports_kill(tmp_path, layers):  # noqa: F811
    rt = ProcessRuntime(node_name=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state")
    try:
        assert rt.shim is not None
        c = cfg("killed", layers, ["sh", "-c", "while :; do sleep 0.1; done"], tmp_path)
        state = await rt.start(c)
        assert Path(f"/proc/{state.pid}/comm").read_text().strip() == SHIM_NAME
        waiter = asyncio.create_task(rt.wait(c.id))
        os.kill(rt.container_pid(c.id), signal.SIGKILL)
        status = await asyncio.wait_for(waiter, 60)
        assert (status.code, status.reason) == (137, "Error")
        await rt.remove(c.id)
    finally:
        rt.cgroups.cleanup()


async def test_setup_failure_is_125_with_the_reason(runtime, layers, tmp_path):  # noqa: F811
    c = cfg("badmount", layers, ["sh", "-c", "true"], tmp_path,
            mounts=[{"source": str(tmp_path / "no-such-dir"), "target": "/data", "type": "bind"}])
    status, log = await run_to_exit(runtime, c)
    assert status.code == 125 and "container setup failed: mount bind" in status.message, (status, log)
    assert "no-such-dir" in status.message



async def test_the_shim_makes_limits_and_joins_the_container_cgroup(runtime, layers, tmp_path):  # noqa: F811
    if not runtime.cgroups.available:
        pytest.fail("no cgroup hierarchy usable on this machine")
    c = cfg("limits", layers, ["sh", "-c", "while :; do sleep 0.1; done"], tmp_path,
            memory_bytes=48 << 20, cpu_millis=250, pids_max=64)
    await runtime.start(c)
    cg = runtime.cgroup(c.id)
    assert cg is not None and runtime.container_pid(c.id) in cg.pids()
    if cg.version == 1:
        assert (cg.paths["memory"] / "memory.limit_in_bytes").read_text().strip() == str(48 << 20)
        assert (cg.paths["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "25000"
        assert (cg.paths["pids"] / "pids.max").read_text().strip() == "64"
    else:
        assert (cg.paths["unified"] / "memory.max").read_text().strip() == str(48 << 20)
        assert (cg.paths["unified"] / "cpu.max").read_text().split()[0] == "25000"
    waiter = asyncio.create_task(runtime.wait(c.id))
    runtime.kill(c.id)
    await asyncio.wait_for(waiter, 60)
    await runtime.remove(c.id)
    assert runtime.cgroups.open(c.id) is None  # removed with the container
