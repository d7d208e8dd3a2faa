"""End to end: ``clusterctl tui`` in a real terminal (tmux) against a real control plane
(API server + scheduler + controllers) and hollow nodes (``clusterctl sim nodes``).

Creates a deployment through the API and sees its pods on screen, scales it from the TUI, opens a
pod's logs, stops the API server and sees "DISCONNECTED", restarts it and sees the view recover.
Hollow nodes run nothing, so the log view shows the API server's answer for a node without a
log endpoint (the point checked here is that the view opens and shows that answer, not a hang).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from clusterctl.api.cli import DEFAULT_COMPONENTS
from clusterctl.api.testing import FAST_TIMINGS, ControlPlane, start_control_plane

CLUSTERCTL = [sys.executable, "-m", "clusterctl"]


class Tmux:
    def __init__(self, sock: Path, name: str) -> None:
        self.sock, self.name = sock, name

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-S", str(self.sock), *args], capture_output=True, text=True, check=True, timeout=30).stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-s", self.name, "-x", "120", "-y", "40", command)

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.run("send-keys", "-t", self.name, *(["-l"] if literal else []), *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def wait(self, what: str, probe: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Until the screen satisfies ``probe`` (60 s by default: every step here goes through
        processes — API server, controllers, hollow nodes, the TUI — on a possibly loaded machine)."""
        end = time.monotonic() + timeout
        text = ""
        while time.monotonic() < end:
            text = self.screen()
            if probe(text):
                return text
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{text}")

    def press_until(self, what: str, probe: Callable[[str], bool], *keys: str, literal: bool = False,
                    timeout: float = 60.0) -> str:
        """Send ``keys`` until the screen satisfies ``probe``: keys that arrive before their
        widget has focus are lost, so they are sent again, but each try waits twice as long as
        the one before (a loaded machine can take seconds to draw: keys sent again too soon
        would land on the next screen)."""
        end = time.monotonic() + timeout
        patience = 1.0
        while True:
            self.keys(*keys, literal=literal)
            left = end - time.monotonic()
            try:
                return self.wait(what, probe, timeout=max(0.1, min(patience, left)))
            except AssertionError:
                if time.monotonic() >= end:
                    raise
            patience *= 2

    def command(self, text: str) -> None:
        """``:`` then ``text`` + Enter, once the command bar is open (keys typed before go to the view)."""
        self.keys(":", literal=True)
        self.wait("command bar", lambda s: "resource (po, deploy" in s)
        self.keys(text, literal=True)
        self.keys("Enter")

    def type_into_dialog(self, value: str) -> None:
        """Replace a dialog input's text with ``value``; keys sent before the input has focus are
        lost, so each step is repeated until the screen shows it."""
        def input_line(s: str) -> str | None:
            lines = s.splitlines()
            for i, ln in enumerate(lines):
                if "replicas:" in ln and i + 2 < len(lines):
                    return lines[i + 2].replace("█", "").replace("▊", "").replace("▎", "").strip()
            return None
        end = time.monotonic() + 60
        patience = 1.0
        while True:
            self.keys("End")
            self.keys("BSpace", "BSpace", "BSpace", "BSpace")
            self.keys(value, literal=True)
            try:
                self.wait(f"{value!r} typed", lambda s: input_line(s) == value, timeout=min(patience, max(0.1, end - time.monotonic())))
                return
            except AssertionError:
                if time.monotonic() >= end:
                    raise AssertionError(f"could not type {value!r}; screen:\n{self.screen()}") from None
            patience *= 2

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", str(self.sock), "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ControlPlane]:
    cp = start_control_plane(tmp_path / "cp", timings=FAST_TIMINGS, extra={"components": DEFAULT_COMPONENTS})
    log = open(tmp_path / "sim.log", "wb")
    sim = subprocess.Popen([*CLUSTERCTL, "sim", "nodes", "2", "--prefix", "e2e-", "--renew-interval", "2", "--kubeconfig", str(cp.kubeconfig)],
                           stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield cp
    finally:
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
        log.close()
        cp.stop()


def running_web(text: str) -> int:
    # the pod IP may be cut at the terminal's edge (columns keep the width of the widest value
    # they have shown, e.g. "Terminating"): its first characters are enough
    return sum(1 for line in text.splitlines() if "web-" in line and " Running " in line and " 10.2" in line)


@pytest.mark.timeout(300)
def test_tui_in_tmux_follows_the_cluster(cluster: ControlPlane, tmp_path: Path) -> None:
    assert shutil.which("tmux"), "tmux is part of this machine's kit"
    tmux = Tmux(tmp_path / "tmux.sock", "tui")
    env_cmd = f"cd {Path(__file__).resolve().parents[2]} && exec {' '.join(CLUSTERCTL)} tui --kubeconfig {cluster.kubeconfig}"
    tmux.start(env_cmd)
    try:
        tmux.wait("connected", lambda s: "● connected" in s)
        deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
                  "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "web", "image": "registry.local/web:1"}]}}}}
        assert cluster.request("POST", "/apis/apps/v1/namespaces/default/deployments", deploy).status == 201
        tmux.wait("2 web pods Running", lambda s: running_web(s) == 2)
        # scale to 3 from the TUI
        tmux.command("deploy")
        tmux.wait("deployments view", lambda s: "Deployments(" in s and " web " in s)
        # the view may take focus a moment after it shows: a key sent before is lost (sent again;
        # an "s" more lands in the dialog's input, which type_into_dialog clears)
        tmux.press_until("scale dialog", lambda s: "replicas:" in s, "s", literal=True)
        tmux.type_into_dialog("3")
        tmux.keys("Enter")
        tmux.wait("3/3 ready", lambda s: any(" web " in ln and "3/3" in ln for ln in s.splitlines()))
        spec = json.loads(cluster.request("GET", "/apis/apps/v1/namespaces/default/deployments/web").body)["spec"]
        assert spec["replicas"] == 3
        tmux.keys("Enter")  # drill down to its pods
        screen = tmux.wait("3 web pods Running", lambda s: running_web(s) == 3 and "Pods(" in s)
        assert "-l app=web" in screen
        # logs of the selected pod
        # (an "l" more on the log view does nothing)
        screen = tmux.press_until("log view", lambda s: "Logs default/web-" in s and "follow=off" in s, "l", literal=True)
        screen = tmux.wait("log answer", lambda s: len([ln for ln in s.splitlines()[1:-1] if ln.strip()]) >= 1)
        tmux.keys("Escape")
        tmux.wait("back to pods", lambda s: "Pods(" in s)
        # the API server goes away: the screen says so, keys still work
        cluster.stop()
        tmux.wait("DISCONNECTED", lambda s: "DISCONNECTED" in s, timeout=30)
        tmux.command("no")
        tmux.wait("nodes view while disconnected", lambda s: "Nodes[" in s and "e2e-0" in s)
        # it comes back: connected again, and the view shows the cluster as it is now
        cluster.start()
        assert cluster.request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web", {"spec": {"replicas": 1}},
                               content_type="application/merge-patch+json").status == 200
        tmux.wait("connected again", lambda s: "● connected" in s, timeout=60)
        tmux.keys("Escape")
        tmux.wait("1 web pod after reconnect", lambda s: running_web(s) == 1 and "Pods(" in s, timeout=60)
        tmux.keys("q", literal=True)
    finally:
        if os.environ.get("TUI_E2E_KEEP") is None:
            tmux.kill()
