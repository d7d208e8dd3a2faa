"""The seed's "Working with a cluster" walkthrough on ``clusterctl up --nodes 2`` (real node agents,
real pod network, real NodePorts), once with ``clusterctl`` and once with the real ``kubectl``.

run an HTTP image on 8080 → deployment 1/1 → expose NodePort → curl through the NodePort →
describe the service (Endpoints listed) → scale to 4 (Running on both nodes) → set image v2 →
rollout status finishes (and the NodePort answers v2) → rollout undo (v1 again) → delete everything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterctl.local_cluster import free_port
from clusterctl.up import push_httpd_image

REPO = Path(__file__).resolve().parents[2]
CLUSTERCTL = [sys.executable, "-m", "clusterctl"]


class Up:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / "up.log"
        self.proc: subprocess.Popen | None = None
        self.registry = ""

    def start(self, *extra: str, timeout: float = 120.0) -> str:
        offset = self.log.stat().st_size if self.log.exists() else 0
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([*CLUSTERCTL, "up", "--nodes", "2", "--data-dir", str(self.data_dir), "--port", str(free_port()), *extra],
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_bytes()[offset:].decode(errors="replace")
            if "Ctrl-C stops the cluster" in text:
                m = re.search(r"registry: (\S+)", text)
                self.registry = m.group(1) if m else ""
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"clusterctl up exited {self.proc.returncode}:\n{text}")
            time.sleep(0.1)
        raise AssertionError(f"clusterctl up not ready in {timeout}s:\n{self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(120)  # nodes, their pods, the registry and the control plane stop in turn
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def up(tmp_path_factory) -> Iterator[Up]:
    u = Up(tmp_path_factory.mktemp("up") / "cluster")
    try:
        u.start()
        yield u
    finally:
        u.stop()
        assert u.proc is None or u.proc.returncode == 0, u.log.read_text(errors="replace")[-3000:]


def _tool(name: str, up: Up):
    env = {**os.environ, "KUBECONFIG": str(up.data_dir / "kubeconfig")}
    argv = CLUSTERCTL if name == "clusterctl" else ["kubectl"]

    def run(*args: str, check: bool = True) -> str:
        r = subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=120)
        if check:
            assert r.returncode == 0, f"{name} {' '.join(args)} failed ({r.returncode}):\n{r.stderr}{r.stdout}"
        return r.stdout
    return run


def _wait(pred, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if pred():
                return
        except Exception as exc:  # noqa: BLE001 - keep polling, report the last error
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} ({last!r})")


def _curl(url: str) -> str:
    with urllib.request.urlopen(url, timeout=20) as r:
        return r.read().decode()


# each test's cap includes the module's `up` (set up with the first one): the suite's 180 s
# default is too close for a cluster start + a rollout + an undo on a loaded machine
@pytest.mark.timeout(600)
@pytest.mark.parametrize("tool", ["clusterctl", "kubectl"])
def test_walkthrough(up: Up, tool: str) -> None:
    run = _tool(tool, up)
    app = f"web-{tool}"
    v1 = push_httpd_image(f"{up.registry}/{app}:v1", f"{app} v1\n")
    v2 = push_httpd_image(f"{up.registry}/{app}:v2", f"{app} v2\n")

    assert "Server Version" in run("version")
    if tool == "clusterctl":
        assert run("run", app, f"--image={v1}", "--port=8080").strip() == f"deployment.apps/{app} created"
    else:  # kubectl >= 1.18 `run` makes a bare Pod: the seed's deployment comes from `create deployment`
        run("create", "deployment", app, f"--image={v1}", "--port=8080")
    _wait(lambda: run("get", "deployments", app).splitlines()[1].split()[1] == "1/1", what=f"{app} 1/1")
    assert run("get", "deployments").splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]

    run("expose", "deployment", app, "--type=NodePort", "--port=8080")
    svc_row = next(line for line in run("get", "services").splitlines() if line.startswith(app + " "))
    assert svc_row.split()[1] == "NodePort"
    node_port = int(re.search(r"8080:(\d+)/TCP", svc_row).group(1))
    ips = run("get", "nodes", "-o", "jsonpath={.items[*].status.addresses[?(@.type==\"InternalIP\")].address}" if tool == "kubectl"
              else "jsonpath={.items[*].status.addresses[0].address}").split()
    assert len(ips) == 2
    # each node's proxy learns of the new Service on its own watch: wait for both
    _wait(lambda: all(_curl(f"http://{ip}:{node_port}/") == f"{app} v1\n" for ip in ips), what="curl through the NodePort")

    _wait(lambda: re.search(r"Endpoints:\s+10\.244\.\d+\.\d+:8080", run("describe", f"services/{app}")), what="Endpoints listed")

    run("scale", f"--replicas=4", f"deployment/{app}")

    def four_running():
        pods = json.loads(run("get", "pods", "-l", f"app={app}", "-o", "json"))["items"]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 4 and all(p["status"].get("phase") == "Running" for p in live) and \
            {p["spec"]["nodeName"] for p in live} == {"node-1", "node-2"}
    _wait(four_running, what="4 pods Running across both nodes")
    table = run("get", "pods", "-l", f"app={app}").splitlines()
    assert len(table) == 5 and all(line.split()[2] == "Running" for line in table[1:])

    run("set", "image", f"deployment/{app}", f"*={v2}")
    out = run("rollout", "status", f"deployment/{app}", "--timeout=90s" if tool == "kubectl" else "--timeout=90")
    assert out.strip().splitlines()[-1] == f'deployment "{app}" successfully rolled out'
    _wait(lambda: _curl(f"http://{ips[0]}:{node_port}/") == f"{app} v2\n", what="v2 answers")

    run("rollout", "undo", f"deployment/{app}")
    run("rollout", "status", f"deployment/{app}", "--timeout=90s" if tool == "kubectl" else "--timeout=90")
    _wait(lambda: all(_curl(f"http://{ip}:{node_port}/") == f"{app} v1\n" for ip in ips for _ in range(4)), what="v1 again")

    run("delete", "service", app)
    run("delete", "deployment", app)
    _wait(lambda: not run("get", "pods", "-l", f"app={app}", "-o", "name").strip(), what="pods gone")
    assert run("get", "deployments", "-o", "name").strip() == ""


@pytest.mark.timeout(600)
def test_logs_exec_top_on_real_nodes(up: Up) -> None:
    run = _tool("clusterctl", up)
    image = push_httpd_image(f"{up.registry}/web-tools:v1", "tools\n")
    run("create", "deployment", "tools", f"--image={image}", "--port=8080")
    _wait(lambda: run("get", "deploy", "tools").splitlines()[1].split()[1] == "1/1", what="tools 1/1")
    assert run("exec", "deploy/tools", "--", "cat", "/www/index.html") == "tools\n"
    r = subprocess.run([*CLUSTERCTL, "exec", "deploy/tools", "--", "sh", "-c", "echo oops >&2; exit 3"], capture_output=True, text=True,
                       env={**os.environ, "KUBECONFIG": str(up.data_dir / "kubeconfig")})
    assert r.returncode == 3 and r.stderr == "oops\n"
    r = subprocess.run([*CLUSTERCTL, "exec", "-i", "deploy/tools", "--", "cat"], input="from stdin\n", capture_output=True, text=True,
                       env={**os.environ, "KUBECONFIG": str(up.data_dir / "kubeconfig")})
    assert r.returncode == 0 and r.stdout == "from stdin\n"
    pod_ip = json.loads(run("get", "pods", "-l", "app=tools", "-o", "json"))["items"][0]["status"]["podIP"]
    assert run("exec", "deploy/tools", "--", "wget", "-qO-", f"http://{pod_ip}:8080/") == "tools\n"
    _wait(lambda: "response:200" in run("logs", "deploy/tools"), what="httpd access log line")
    _wait(lambda: re.search(r"node-1\s+\d+m\s+\d+%\s+\d+Mi", run("top", "nodes")), what="node usage published")
    assert re.search(r"tools-\S+\s+\d+m\s+\d+Mi", run("top", "pods"))
    run("delete", "deploy", "tools")


def _pids_of(pattern: str) -> list[int]:
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split()]


@pytest.mark.timeout(600)  # two cluster starts
def test_sigkill_to_up_takes_the_control_plane_and_up_resumes_the_cluster(tmp_path: Path) -> None:
    u = Up(tmp_path / "crash")
    try:
        u.start()
        run = _tool("clusterctl", u)
        run("create", "configmap", "keep", "--from-literal=k=v")
        cp_pattern = f"control-plane --config {u.data_dir}/control-plane.yaml"
        assert len(_pids_of(cp_pattern)) == 1
        os.killpg(u.proc.pid, signal.SIGKILL)
        u.proc.wait()
        _wait(lambda: not _pids_of(cp_pattern), timeout=30, what="the control plane to die with up's group")
        text = u.start()  # same data dir: resumes
        assert "control plane: resuming" in text
        assert run("get", "configmap", "keep", "-o", "jsonpath={.data.k}") == "v"
        assert [line.split()[1] for line in run("get", "nodes", "--no-headers").splitlines()] == ["Ready", "Ready"]
    finally:
        u.stop()
    assert u.proc.returncode == 0
    assert not _pids_of(f"control-plane --config {u.data_dir}/control-plane.yaml")
