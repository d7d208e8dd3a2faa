"""End to end against ``clusterctl up --demo`` (real node agents running real processes): the TUI
in tmux shows the demo's pods and opens a pod's log with the httpd's own output in it."""

from __future__ import annotations

import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from clusterctl.api.testing import free_port
from tests.tui.test_e2e_tmux import CLUSTERCTL, Tmux


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    data = tmp_path / "up"
    out = tmp_path / "up.log"
    log = open(out, "wb")
    proc = subprocess.Popen([*CLUSTERCTL, "up", "--nodes", "1", "--data-dir", str(data), "--port", str(free_port()), "--demo"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        end = time.monotonic() + 180  # a cluster, an image build and a demo on a possibly loaded machine
        url = None
        while time.monotonic() < end and url is None:
            if proc.poll() is not None:
                raise AssertionError(f"clusterctl up exited {proc.returncode}:\n{out.read_text()[-3000:]}")
            text = out.read_text(errors="replace")
            m = re.search(r"curl (http://([0-9.]+):\d+/)", text)
            # only loopback or the node this test's own `up` created (its network namespace)
            if m and (m.group(2).startswith("127.") or re.search(rf"nodes: \S+ {re.escape(m.group(2))}\b", text)):
                url = m.group(1)
            time.sleep(0.2)
        assert url, f"no demo URL:\n{out.read_text()[-3000:]}"
        yield data / "kubeconfig", url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.timeout(300)
def test_tui_shows_demo_pods_and_their_logs(up: tuple[Path, str], tmp_path: Path) -> None:
    kubeconfig, url = up
    # up prints the URL once it answers; a loaded machine can still be slow to (re)connect
    end = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                assert resp.status == 200
                break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)
    for _ in range(10):  # the httpd logs every request it serves (-v): give both pods some
        with urllib.request.urlopen(url, timeout=30) as resp:
            assert resp.status == 200
    tmux = Tmux(tmp_path / "tmux.sock", "tui")
    tmux.start(f"cd {Path(__file__).resolve().parents[2]} && exec {' '.join(CLUSTERCTL)} tui --kubeconfig {kubeconfig}")
    try:
        tmux.wait("connected", lambda s: "● connected" in s)
        tmux.command("po demo")
        # the first view (pods in all namespaces) already shows the demo's pods: wait for the
        # command's own view, or the next key may still be typed into the command bar
        tmux.wait("2 demo pods Running", lambda s: "Pods(ns=demo)" in s
                  and sum(1 for ln in s.splitlines() if " web-" in ln and " Running " in ln) == 2)
        # the view may take focus a moment after it shows (an "l" more on the log view does nothing)
        tmux.press_until("log view", lambda s: "Logs demo/web-" in s, "l", literal=True)
        screen = tmux.wait("the httpd's log lines", lambda s: "response:200" in s or "GET" in s, timeout=30)
        assert "error:" not in screen
    finally:
        tmux.kill()
