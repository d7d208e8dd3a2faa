"""A newcomer's first minutes: on a clean checkout, the README's first command brings up a
cluster (``clusterctl up --demo``) and the demo it prints answers a curl.

The command is taken verbatim from the README's first ``sh`` block and run in a fresh ``git
clone`` of this repository (its own ``.venv``, made by ``.ci/setup``). Two things differ from a
newcomer's machine, both so the test can share a machine with other tests: the cluster's data
dir is under the test's tmp dir (``CLUSTERCTL_UP_DIR``), and ``pkill`` is a no-op (``.ci/setup``
stops Debian-started ``docker-registry``/``etcd`` daemons by name, which would also stop the
registries of tests running beside this one).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def readme_first_command() -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no ```sh block"
    return block.group(1).strip().splitlines()[0]


@pytest.mark.timeout(480)  # a fresh clone, its own venv and `up --demo`: 84 s seen at load 10 (the default cap is 180)
def test_readme_first_command_brings_up_a_cluster_whose_demo_answers(tmp_path: Path) -> None:
    command = readme_first_command()
    assert "clusterctl up" in command and "--demo" in command, f"the README's first command is not `clusterctl up --demo`: {command}"
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "pkill").write_text("#!/bin/sh\nexit 0\n")
    (shims / "pkill").chmod(0o755)
    env = {**os.environ, "PATH": f"{shims}:{os.environ['PATH']}", "CLUSTERCTL_UP_DIR": str(tmp_path / "up"), "PYTHONUNBUFFERED": "1"}
    env.pop("VIRTUAL_ENV", None)
    env.pop("KUBECONFIG", None)
    log = tmp_path / "first-command.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-c", command], cwd=checkout, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 420
        curl = None
        while time.monotonic() < deadline and curl is None:
            text = log.read_text(errors="replace")
            m = re.search(r"curl (http://[\d.]+:\d+/)", text)
            if m:
                curl = m.group(1)
            elif proc.poll() is not None:
                raise AssertionError(f"the README's first command exited {proc.returncode}:\n{text[-4000:]}")
            else:
                time.sleep(0.2)
        assert curl, f"no curl command printed:\n{log.read_text(errors='replace')[-4000:]}"
        text = log.read_text(errors="replace")
        assert f"kubeconfig: {tmp_path / 'up' / 'kubeconfig'}" in text
        body = ""
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(curl, timeout=20) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert "Hello from clusterctl" in body
        # `default` is left empty: the demo lives in its own namespace
        kubectl = subprocess.run(["kubectl", "--kubeconfig", str(tmp_path / "up" / "kubeconfig"), "get", "deploy", "-A", "--no-headers"],
                                 capture_output=True, text=True, check=True).stdout.split()
        assert kubectl[:2] == ["demo", "web"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    assert proc.returncode in (0, 130), log.read_text(errors="replace")[-3000:]
    assert "stopped" in log.read_text(errors="replace")
