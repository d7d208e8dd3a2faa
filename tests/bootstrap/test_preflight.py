"""``playbooks/templates/preflight.sh`` run here as the hosts run it: one PROBLEM line per thing
that stops a host, exit 1 if any. (The lab test checks the whole preflight play on real hosts.)"""

from __future__ import annotations

import platform
import subprocess
import sys
import time

from clusterctl.bootstrap.cli import PLAYBOOKS

SCRIPT = (PLAYBOOKS / "templates" / "preflight.sh").read_text()


def preflight(*specs: str) -> subprocess.CompletedProcess:
    here = [platform.machine(), "%d.%d" % sys.version_info[:2], str(int(time.time())), "30"]
    return subprocess.run(["sh", "-c", SCRIPT, "preflight", *here, *specs], capture_output=True, text=True, timeout=30)


def test_a_missing_command_a_worker_needs_is_named_with_its_package_and_why():
    out = preflight("needs=no-such-tool-here:iproute2:the bridge pod network needs it", "needs=sh:dash:it runs this")
    assert out.returncode == 1
    problems = out.stderr.splitlines()
    assert "PROBLEM: no no-such-tool-here command (Debian: iproute2): the bridge pod network needs it" in problems
    assert not [p for p in problems if "no sh command" in p]
