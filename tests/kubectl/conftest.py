"""A real control plane (API server + scheduler + controllers) with two hollow nodes, shared by
the verb tests of one module, and ``run(*argv)``: the ``clusterctl`` dispatcher in-process with
its stdout/stderr/exit code captured."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from clusterctl import cli
from clusterctl.api.testing import FAST_TIMINGS, ControlPlane, start_control_plane
from clusterctl.local_cluster import COMPONENTS


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cluster:
    cp: ControlPlane
    sim: subprocess.Popen

    def run(self, *argv: str, stdin: str | None = None) -> Result:
        out, err = io.StringIO(), io.StringIO()
        old_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(["--kubeconfig", str(self.cp.kubeconfig), *argv])
                except SystemExit as exc:
                    code = int(exc.code or 0)
        finally:
            sys.stdin = old_stdin
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str, stdin: str | None = None) -> str:
        r = self.run(*argv, stdin=stdin)
        assert r.code == 0, f"clusterctl {' '.join(argv)} failed ({r.code}): {r.err}{r.out}"
        return r.out

    def wait(self, predicate, timeout: float = 45.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cp = start_control_plane(tmp_path_factory.mktemp("cp"), timings=FAST_TIMINGS, extra={"components": COMPONENTS})
    log = open(cp.data_dir / "sim.log", "ab")
    sim = subprocess.Popen([sys.executable, "-m", "clusterctl", "sim", "nodes", "2", "--kubeconfig", str(cp.kubeconfig)],
                           stdout=log, stderr=log, start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    log.close()
    c = Cluster(cp, sim)
    try:
        c.wait(lambda: [line.split()[1] for line in c.run("get", "nodes", "--no-headers").out.splitlines()] == ["Ready", "Ready"],
               what="2 hollow nodes Ready")
        yield c
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
        cp.stop()
