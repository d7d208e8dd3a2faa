"""``kubectl logs`` (-f, --previous, --tail) and ``kubectl exec`` (with stdin, exit codes, TTY) through
the real API server proxy to a real agent; the agent endpoint refuses callers that are not admins."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import pytest

from node_runtime.harness import wait_pod

pytestmark = pytest.mark.timeout(300)  # kubectl subprocesses, a crash and a restart per test on a possibly loaded machine


def kubectl(cp, *args, input=None, timeout=30):
    return subprocess.run(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args], input=input, capture_output=True, text=True,
                          timeout=timeout)


def kubectl_in_pty(cp, *args, timeout=30) -> str:
    """kubectl with a terminal as stdin/stdout (what ``-t`` needs); returns everything it printed."""
    import pty
    master, slave = pty.openpty()
    proc = subprocess.Popen(["kubectl", "--kubeconfig", str(cp.kubeconfig), *args], stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(5)
    os.close(master)
    return out.decode(errors="replace")


async def akubectl(cp, *args, input=None, timeout=30):
    return await asyncio.to_thread(kubectl, cp, *args, input=input, timeout=timeout)


def running(pod):
    return (pod.get("status") or {}).get("phase") == "Running"


async def test_logs_follow_previous_and_exec(agent, images, control_plane):
    cp = control_plane
    script = "i=0; while true; do i=$((i+1)); echo line-$i; if [ -e /tmp/die ]; then rm /tmp/die; exit 1; fi; sleep 0.1; done"
    await agent.client.create(agent.pod("talker", [{"name": "main", "image": images["tools:v1"], "args": [script]}]))
    await wait_pod(agent.client, "default", "talker", running)
    deadline = time.monotonic() + 30  # Running: started, but it may not have written two lines yet
    while "line-2\n" not in (out := await akubectl(cp, "logs", "talker")).stdout:
        assert time.monotonic() < deadline, f"talker never logged two lines: {out.stdout!r} {out.stderr!r}"
        await asyncio.sleep(0.1)
    out = await akubectl(cp, "logs", "talker", "--tail", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split()
    assert len(lines) == 2 and all(l.startswith("line-") for l in lines)
    # logs -f streams new lines as they are written
    proc = await asyncio.create_subprocess_exec("kubectl", "--kubeconfig", str(cp.kubeconfig), "logs", "-f", "talker", "--tail", "1",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    seen = []
    try:
        for _ in range(5):
            seen.append((await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip())
    finally:
        proc.kill()
        await proc.wait()
    nums = [int(s.split("-")[1]) for s in seen]
    assert nums == sorted(nums) and len(set(nums)) == 5
    # exec: stdout, stderr, exit code, stdin
    out = await akubectl(cp, "exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; hostname; exit 3")
    assert out.returncode == 3 and "out\ntalker\n" == out.stdout and "err" in out.stderr
    out = await akubectl(cp, "exec", "-i", "talker", "--", "cat", input="piped through stdin\n")
    assert out.returncode == 0 and out.stdout == "piped through stdin\n", out.stderr
    tty_out = await asyncio.to_thread(kubectl_in_pty, cp, "exec", "-it", "talker", "--", "sh", "-c",
                                      "test -t 0 && echo has-tty; stty size")
    assert "has-tty" in tty_out and "\r\n" in tty_out, tty_out
    # crash it once: --previous shows the dead instance's log
    out = await akubectl(cp, "exec", "talker", "--", "touch", "/tmp/die")
    assert out.returncode == 0, out.stderr
    await wait_pod(agent.client, "default", "talker",
                   lambda p: p["status"]["containerStatuses"][0]["restartCount"] >= 1 and running(p)
                   and p["status"]["containerStatuses"][0]["ready"] is True)  # not between two runs (back-off)
    out = await akubectl(cp, "logs", "talker", "--previous")
    assert out.returncode == 0 and out.stdout.startswith("line-1\n"), out.stderr
    # what kubectl shows for the pod: READY, STATUS, RESTARTS (with the last restart's age), IP, NODE
    out = await akubectl(cp, "get", "pod", "talker", "-o", "wide", "--no-headers")
    cols = out.stdout.split()
    assert cols[:4] == ["talker", "1/1", "Running", "1"], out.stdout
    assert agent.node_name in cols and "127.0.0.1" in cols
