"""`clusterctl control-plane init` and `clusterctl control-plane --config`: files written, server
reachable with the written kubeconfig, node tokens, clean shutdown on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

from clusterctl.api.testing import free_port


def _clusterctl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clusterctl", *args], capture_output=True, text=True, timeout=60, **kw)


def test_init_then_run(tmp_path):
    data = tmp_path / "cp"
    port = free_port()
    init = _clusterctl("control-plane", "init", "--data-dir", str(data), "--port", str(port))
    assert init.returncode == 0, init.stderr
    for f in ("control-plane.yaml", "kubeconfig", "tokens.yaml", "pki/ca.crt", "pki/ca.key", "pki/server.crt",
              "pki/secrets.key"):
        assert (data / f).exists(), f
    assert oct((data / "pki/ca.key").stat().st_mode & 0o777) == "0o600"
    kc = yaml.safe_load((data / "kubeconfig").read_text())
    assert kc["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{port}"
    again = _clusterctl("control-plane", "init", "--data-dir", str(data))
    assert again.returncode == 2 and "exists" in again.stderr

    token = _clusterctl("control-plane", "--config", str(data / "control-plane.yaml"), "node-token", "w1").stdout.strip()
    assert len(token) > 20

    proc = subprocess.Popen([sys.executable, "-m", "clusterctl", "control-plane", "--config",
                             str(data / "control-plane.yaml")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60  # a cold start on a loaded machine
        while True:
            v = subprocess.run(["kubectl", "--kubeconfig", str(data / "kubeconfig"), "get", "ns", "-o", "name"],
                               capture_output=True, text=True, timeout=30)
            if v.returncode == 0:
                break
            assert time.monotonic() < deadline, v.stderr
            time.sleep(0.2)
        assert "namespace/kube-system" in v.stdout
        import ssl
        ctx = ssl.create_default_context(cafile=str(data / "pki/ca.crt"))
        req = urllib.request.Request(f"https://127.0.0.1:{port}/api/v1/nodes",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    # the admin kubeconfig survives restarts (same token)
    assert yaml.safe_load((data / "kubeconfig").read_text())["users"][0]["user"]["token"] == kc["users"][0]["user"]["token"]


def test_a_taken_port_is_one_clear_error_and_the_store_is_closed(tmp_path):
    """Start fails after the store is open (its port is taken): one line naming the address, exit 1,
    no traceback, and the store closed on the way out (no "Unclosed client session" / lock left)."""
    import socket
    data = tmp_path / "cp"
    assert _clusterctl("control-plane", "init", "--data-dir", str(data), "--port", "0").returncode == 0
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    config = yaml.safe_load((data / "control-plane.yaml").read_text())
    config.update(port=port, bind_address="127.0.0.1")
    (data / "control-plane.yaml").write_text(yaml.safe_dump(config))
    try:
        run = _clusterctl("control-plane", "--config", str(data / "control-plane.yaml"))
    finally:
        taken.close()
    assert run.returncode == 1, run.stderr
    assert f"error: the API server cannot listen on 127.0.0.1:{port}: " in run.stderr and "in use" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr and "Unclosed" not in run.stderr, run.stderr
