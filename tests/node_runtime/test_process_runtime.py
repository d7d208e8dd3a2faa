"""The process runtime with real namespaces, overlayfs and cgroups (root, as CI runs)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from node_runtime.runtime.process import ContainerConfig, ProcessRuntime, check_capabilities
from tests.node_runtime.rootfs import make_busybox_rootfs, unpacked_layers

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the process runtime needs root (CI runs as root)")


@pytest.fixture
def layers(tmp_path):
    """An unpacked busybox image layer (unpacked by the real store code path)."""
    root = make_busybox_rootfs(tmp_path / "src", {"www/index.html": "hello from the rootfs\n",
                                                  "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n"})
    return unpacked_layers(root, tmp_path)


@pytest.fixture
def runtime(tmp_path):
    rt = ProcessRuntime(node_name=f"t{uuid.uuid4().hex[:8]}", state_dir=tmp_path / "state")
    yield rt
    for cid in list(rt.known()):
        rt.kill(cid)
        cg = rt.cgroup(cid)
        if cg:
            cg.destroy()
    rt.cgroups.cleanup()


def cfg(cid, layers, argv, tmp_path, **kw):
    return ContainerConfig(id=cid, layers=layers, argv=argv, env={"PATH": "/bin"}, hostname="web-1",
                           log_path=str(tmp_path / f"{cid}.log"), **kw)


async def run_to_exit(rt, c, timeout=60):
    await rt.start(c)
    status = await asyncio.wait_for(rt.wait(c.id), timeout)
    await rt.remove(c.id)
    return status, Path(c.log_path).read_text()


async def wait_logged(c, text: str, timeout: float = 30) -> None:
    """Until the container's log holds ``text``: a started container has not run its first
    command yet (the shim still sets it up), so a signal sent "after start" can beat its trap."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (Path(c.log_path).exists() and text in Path(c.log_path).read_text()):
        assert asyncio.get_running_loop().time() < deadline, f"{c.id}: {text!r} never logged"
        await asyncio.sleep(0.05)


def test_capabilities_present():
    assert check_capabilities() is None


async def test_isolation_hostname_pid1_and_rootfs(runtime, layers, tmp_path):
    marker = tmp_path / "host-only-file"
    marker.write_text("secret")
    script = ("hostname; echo pid=$$; ls /proc | grep -c '^[0-9]' ; cat /www/index.html; "
              f"test -e {marker} && echo HOSTFILE || echo nohostfile; cat /proc/kcore | head -c 1 | wc -c; "
              "touch /sys/x 2>/dev/null && echo sys-rw || echo sys-ro; id -u")
    status, log = await run_to_exit(runtime, cfg("iso", layers, ["sh", "-c", script], tmp_path), )
    assert status.code == 0 and status.reason == "Completed", log
    lines = log.split()
    assert lines[0] == "web-1"
    assert "pid=1" in lines
    assert int(lines[2]) <= 3  # only the container's own processes are visible
    assert "hello from the rootfs" in log
    assert "nohostfile" in log and "HOSTFILE" not in log
    assert "sys-ro" in log
    assert lines[-1] == "0"


async def test_capabilities_are_dropped_and_no_new_privs(runtime, layers, tmp_path):
    status, log = await run_to_exit(runtime, cfg("caps", layers, ["sh", "-c", "grep -E 'CapBnd|NoNewPrivs' /proc/self/status"], tmp_path))
    bnd = int(next(l for l in log.splitlines() if l.startswith("CapBnd")).split()[1], 16)
    assert bnd & (1 << 21) == 0  # CAP_SYS_ADMIN gone
    assert bnd & (1 << 0)        # CAP_CHOWN kept
    assert "NoNewPrivs:\t1" in log


async def test_run_as_user(runtime, layers, tmp_path):
    status, log = await run_to_exit(runtime, cfg("user", layers, ["id", "-u"], tmp_path, uid=65534, gid=65534))
    assert log.strip() == "65534"


async def test_exit_codes_and_missing_command(runtime, layers, tmp_path):
    status, _ = await run_to_exit(runtime, cfg("fail", layers, ["sh", "-c", "exit 3"], tmp_path))
    assert (status.code, status.reason) == (3, "Error")
    status, log = await run_to_exit(runtime, cfg("nocmd", layers, ["nosuchcmd"], tmp_path))
    assert status.code == 127 and 'exec: "nosuchcmd": executable file not found in $PATH' == status.message
    status, log = await run_to_exit(runtime, cfg("nopath", layers, ["/no/such"], tmp_path))
    assert status.code == 127 and "/no/such" in status.message


async def test_memory_limit_oom_killed(runtime, layers, tmp_path):
    if not runtime.cgroups.available:
        pytest.fail("no cgroup hierarchy usable on this machine")
    hog = ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=200 2>/dev/null; x=$(head -c 80000000 /dev/zero | tr '\\0' a); echo survived"]
    status, log = await run_to_exit(runtime, cfg("oom", layers, hog, tmp_path, memory_bytes=32 << 20))
    assert status.reason == "OOMKilled" and status.code == 137, (status, log)


async def test_stop_sends_sigterm_then_kills(runtime, layers, tmp_path):
    c = cfg("stop", layers, ["sh", "-c", "trap 'echo got-term; exit 0' TERM; echo trapped; while true; do sleep 0.1; done"], tmp_path)
    await runtime.start(c)
    await wait_logged(c, "trapped")
    waiter = asyncio.create_task(runtime.wait(c.id))
    await runtime.stop(c.id, grace=30)
    status = await asyncio.wait_for(waiter, 60)
    assert status.code == 0 and "got-term" in Path(c.log_path).read_text()
    # a process ignoring SIGTERM is killed after the grace period
    c2 = cfg("stubborn", layers, ["sh", "-c", "trap '' TERM; echo trapped; while true; do sleep 0.1; done"], tmp_path)
    await runtime.start(c2)
    await wait_logged(c2, "trapped")
    waiter = asyncio.create_task(runtime.wait(c2.id))
    await runtime.stop(c2.id, grace=0.3)
    status = await asyncio.wait_for(waiter, 60)
    assert status.code == 137
    await runtime.remove(c.id)
    await runtime.remove(c2.id)


async def test_adopt_after_restart_and_exec(runtime, layers, tmp_path):
    c = cfg("adopt", layers, ["sh", "-c", "echo started; while true; do sleep 0.1; done"], tmp_path)
    await runtime.start(c)
    await wait_logged(c, "started")  # the workload runs once the launcher has pivoted into the rootfs
    again = ProcessRuntime(node_name=runtime.node_name, state_dir=runtime.state_dir.parent, cgroups=runtime.cgroups)
    alive = again.adopt()
    assert [s.id for s in alive] == ["adopt"]
    out = subprocess.run(again.exec_argv("adopt", ["cat", "/www/index.html"]), capture_output=True, text=True, timeout=60)
    assert out.stdout == "hello from the rootfs\n"
    waiter = asyncio.create_task(again.wait("adopt"))
    again.kill("adopt")
    status = await asyncio.wait_for(waiter, 60)
    assert status.code == 137
    await again.remove("adopt")
    runtime._procs.pop("adopt").wait()


async def test_an_exited_containers_recycled_pid_is_never_signalled(runtime, layers, tmp_path):
    """Once a shim has exited and been reaped its pid is free: the kernel gives it to the next
    process (pid_max 32768, thousands of forks a minute in a busy node). ``stop``/``kill`` and
    ``container_pid`` must then leave that pid, and its children, alone."""
    c = cfg("gone", layers, ["sh", "-c", "exit 0"], tmp_path)
    await runtime.start(c)
    assert (await asyncio.wait_for(runtime.wait(c.id), 60)).code == 0
    # a stranger now holds the shim's old pid (simulated: the state points at it), with a child
    stranger = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while not Path(f"/proc/{stranger.pid}/task/{stranger.pid}/children").read_text().split():
            assert asyncio.get_running_loop().time() < deadline, "the stranger never forked its child"
            await asyncio.sleep(0.05)
        runtime._states[c.id].pid = stranger.pid
        assert runtime.container_pid(c.id) is None
        runtime.kill(c.id)
        await runtime.stop(c.id, grace=0)
        assert stranger.poll() is None and Path(f"/proc/{stranger.pid}/task/{stranger.pid}/children").read_text().split()
        # adopted by a new runtime (no Popen): the start time tells the stranger from the shim
        again = ProcessRuntime(node_name=runtime.node_name, state_dir=runtime.state_dir.parent, cgroups=runtime.cgroups)
        again._states[c.id] = runtime._states[c.id]
        assert again.container_pid(c.id) is None
        again.kill(c.id)
        assert stranger.poll() is None
    finally:
        try:
            os.killpg(stranger.pid, signal.SIGKILL)  # its sleep keeps the group (and so the pgid) alive
        except ProcessLookupError:
            pass
        stranger.wait()
    await runtime.remove(c.id)
