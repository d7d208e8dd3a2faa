"""Prebuilt C helpers: built static on the controller, shipped by the install role to a real lab host
over real SSH, found there by the agent's lookup with no compiler; a rerun uploads nothing, new
sources ship new binaries beside the old, another architecture gets a note and nothing. Old
helpers don't pile up: once the host's active release (``current``) is the new one, the next
install removes the folders neither release uses — but not one a running process executes from.

The role's ``native.yml`` runs alone here (seconds); ``test_bootstrap_lab.py`` checks the same on a
bootstrapped cluster's worker, whose real agent logs that it took the prebuilt shim.
"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import tarfile
import sys
from pathlib import Path

import pytest

from clusterctl.bootstrap.lab_inventory import snapshot_source
from clusterctl.bootstrap.prebuilt import build_prebuilt, expected_keys
from node_runtime.native import PROGRAMS, program_key

pytestmark = [pytest.mark.lab]

ROLE_TASKS = Path(__file__).resolve().parents[2] / "playbooks" / "roles" / "clusterctl_install" / "tasks" / "native.yml"
SHIM_SOURCE = "node_runtime/runtime/shim/ccl-shim.c"
#: the releases the role's prune step asks (clusterctl_home/current and the new release_dir), made in
#: the host by ``install_release``: the host's /opt is its own
HOME = "/opt/clusterctl-test"

#: what the agent does at start (node_runtime.native), run inside the host with no compiler allowed;
#: the shim's source comes on stdin (a lab host has a private /tmp: the test's files are not there)
AGENT_LOOKUP = """
import logging, sys, tempfile
from pathlib import Path
from node_runtime.native import find_or_build
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
src = Path(tempfile.mkdtemp()) / "ccl-shim.c"
src.write_bytes(sys.stdin.buffer.read())
print("FOUND", find_or_build("ccl-shim", Path(tempfile.mkdtemp()) / "state", compilers=(), source=src))
"""


def ship(lab, tmp_path: Path, tree: Path, name: str, *options: str, **extra) -> tuple[dict, str]:
    """Run the role's native.yml on every lab host: (recap per host, the run's output)."""
    play = tmp_path / f"{name}.yml"
    play.write_text(f"- hosts: nodes\n  gather_facts: false\n  tasks:\n    - import_tasks: {ROLE_TASKS}\n")
    log = tmp_path / f"{name}.json"
    variables = {"clusterctl_native_dir": str(tree), "clusterctl_native_arch": extra.pop("arch", None) or _arch(),
                 "clusterctl_native_cache": "/var/cache/clusterctl", "clusterctl_home": HOME,
                 "release_dir": f"{HOME}/releases/{extra.pop('release', 'r1')}", **extra}
    out = subprocess.run([sys.executable, "-m", "clusterctl", "provision", "-i", str(lab.inventory_path), str(play),
                          "-e", json.dumps(variables), "--log-json", str(log), *options],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in events if e["event"] == "recap"][-1]["hosts"], out.stdout


def _arch() -> str:
    import platform
    return platform.machine()


def in_host(lab, script: str, stdin: bytes | None = None, host: str = "h1") -> str:
    out = subprocess.run(lab.exec_argv(host, "sh", "-c", script), input=stdin, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stdout.decode() + out.stderr.decode()
    return out.stdout.decode()


def fresh_cache(lab) -> None:
    """A lab host's /var is a copy-on-write overlay of this machine's, whose helper cache other
    tests fill: start from none, as a new host does (whiteouts in the host's own layer only)."""
    assert in_host(lab, "stat -f -c %T /var/cache").strip() == "overlayfs"
    in_host(lab, "rm -rf /var/cache/clusterctl")


def install_release(lab, source: Path, name: str, *, activate: bool) -> None:
    """A release in the host as the install role lays it out, as far as pruning asks it: its
    ``venv/bin/python`` runs this interpreter with ``source``'s node_runtime package (its helpers'
    sources, hence its keys); ``activate`` points ``current`` at it."""
    package = io.BytesIO()
    with tarfile.open(fileobj=package, mode="w") as tar:
        tar.add(source / "node_runtime", arcname="node_runtime",
                filter=lambda info: None if "__pycache__" in info.name else info)
    release = f"{HOME}/releases/{name}"
    in_host(lab, f"mkdir -p {release}/src {release}/venv/bin && tar -xf - -C {release}/src && "
                 f"printf '#!/bin/sh\nPYTHONPATH={release}/src exec {sys.executable} \"$@\"\n' > {release}/venv/bin/python && "
                 f"chmod 755 {release}/venv/bin/python" + (f" && ln -sfn {release} {HOME}/current" if activate else ""),
            stdin=package.getvalue())


@pytest.mark.timeout(240)
def test_prebuilt_helpers_ship_once_are_used_without_a_compiler_and_follow_the_source(lab_factory, tmp_path):
    source = snapshot_source(tmp_path / "source")
    helpers = build_prebuilt(tmp_path / "wheelhouse" / "native", source_root=source, cache_root=tmp_path / "native-cache")
    assert helpers.missing == () and helpers.keys == expected_keys(source)
    (key,) = [k for k in helpers.keys if k.startswith("ccl-shim-")]
    lab = lab_factory(1)
    fresh_cache(lab)
    install_release(lab, source, "r1", activate=True)

    shipped = f"/var/cache/clusterctl/{key}/ccl-shim"
    checked, _ = ship(lab, tmp_path, helpers.tree, "check", "--check")  # the plan, nothing written
    assert checked["h1"]["changed"] == 1 and checked["h1"]["failed"] == 0
    assert "absent" in in_host(lab, f"test -e {shipped} || echo absent")

    first, _ = ship(lab, tmp_path, helpers.tree, "first")
    assert first["h1"]["changed"] == 1 and first["h1"]["failed"] == 0
    assert in_host(lab, f"stat -c '%U %a' {shipped} $(dirname {shipped})").split() == ["root", "755", "root", "755"]

    # the agent's lookup inside the host: the shipped shim, nothing compiled (no compiler allowed)
    found = in_host(lab, f"{sys.executable} -c '{AGENT_LOOKUP}'", stdin=(source / SHIM_SOURCE).read_bytes())
    assert f"FOUND {shipped}\n" in found and f"ccl-shim: prebuilt {shipped}" in found, found

    again, _ = ship(lab, tmp_path, helpers.tree, "again")
    assert again["h1"]["changed"] == 0

    # new sources (an upgrade): a new key ships beside the old one, which a running agent may still use
    with open(source / SHIM_SOURCE, "a") as fh:
        fh.write("\n/* release N+1 */\n")
    newer = build_prebuilt(tmp_path / "wheelhouse2" / "native", source_root=source, cache_root=tmp_path / "native-cache")
    (new_key,) = [k for k in newer.keys if k.startswith("ccl-shim-")]
    assert new_key != key
    install_release(lab, source, "r2", activate=False)     # staged by an upgrade, r1 still active
    upgraded, _ = ship(lab, tmp_path, newer.tree, "upgraded", release="r2")
    assert upgraded["h1"]["changed"] == 1
    assert set(in_host(lab, "ls /var/cache/clusterctl").split()) >= {key, new_key}

    # the upgrade is done (current -> r2): r1's shim goes at the next install, and so does an
    # older release's; one whose binary a process still runs stays, and that process keeps running
    older, running = "ccl-shim-00000000000000aa", "ccl-shim-00000000000000bb"
    in_host(lab, f"for k in {older} {running}; do mkdir -p /var/cache/clusterctl/$k; "
                 f"cp /bin/sleep /var/cache/clusterctl/$k/ccl-shim; done; ln -sfn {HOME}/releases/r2 {HOME}/current")
    sleeper = subprocess.Popen(lab.exec_argv("h1", f"/var/cache/clusterctl/{running}/ccl-shim", "600"))
    try:
        in_host(lab, f"for i in $(seq 600); do ls -l /proc/*/exe 2>/dev/null | grep -q {running} && exit 0; "
                     f"sleep 0.1; done; exit 1")              # exec'd in the host (its /proc), before pruning
        pruned, _ = ship(lab, tmp_path, newer.tree, "pruned", release="r2")
        assert pruned["h1"]["changed"] == 1 and pruned["h1"]["failed"] == 0
        left = set(in_host(lab, "ls /var/cache/clusterctl").split())
        assert {new_key, running} <= left and not {key, older} & left, left
        assert sleeper.poll() is None
    finally:  # nsenter forked the process into the host's PID namespace: stop it there, by its exe
        in_host(lab, f"for p in /proc/[0-9]*; do [ \"$(readlink $p/exe)\" = /var/cache/clusterctl/{running}/ccl-shim ] "
                     f"&& kill -9 ${{p#/proc/}}; done; true")
        sleeper.wait(timeout=60)
    in_host(lab, f"for i in $(seq 600); do ls -l /proc/*/exe 2>/dev/null | grep -q {running} || exit 0; "
                 f"sleep 0.1; done; exit 1")
    after, _ = ship(lab, tmp_path, newer.tree, "after", release="r2")
    assert after["h1"]["changed"] == 1
    assert running not in in_host(lab, "ls /var/cache/clusterctl").split()
    assert trusted_in_host(lab, f"/var/cache/clusterctl/{new_key}/ccl-shim")


def trusted_in_host(lab, path: str) -> bool:
    return in_host(lab, f"test -x {path} && echo yes || echo no").strip() == "yes"


@pytest.mark.timeout(240)
def test_other_architecture_or_no_compiler_ships_nothing(lab_factory, tmp_path, caplog):
    source = snapshot_source(tmp_path / "source")
    with caplog.at_level(logging.WARNING, logger="clusterctl.bootstrap.prebuilt"):
        none = build_prebuilt(tmp_path / "bare" / "native", source_root=source, cache_root=tmp_path / "nc", compilers=())
    assert none.keys == () and none.missing == tuple(sorted(PROGRAMS)) and list(none.tree.iterdir()) == []
    assert "no C compiler here builds" in caplog.text and "ccl-shim" in caplog.text

    helpers = build_prebuilt(tmp_path / "wheelhouse" / "native", source_root=source, cache_root=tmp_path / "native-cache")
    lab = lab_factory(1)
    fresh_cache(lab)
    install_release(lab, source, "r1", activate=True)
    recap, output = ship(lab, tmp_path, helpers.tree, "other-arch", arch="s390x")
    assert recap["h1"]["changed"] == 0 and recap["h1"]["failed"] == 0
    assert "the prebuilt helpers are s390x: not shipped" in " ".join(output.split())
    (key,) = [k for k in helpers.keys if k.startswith("ccl-shim-")]
    assert "absent" in in_host(lab, f"test -e /var/cache/clusterctl/{key}/ccl-shim || echo absent")

    # a controller without a compiler: an empty tree, nothing shipped, nothing fails
    recap, _ = ship(lab, tmp_path, none.tree, "no-compiler")
    assert recap["h1"]["failed"] == 0
    assert "absent" in in_host(lab, f"test -e /var/cache/clusterctl/{key}/ccl-shim || echo absent")


def assert_workers_run_the_shipped_shim(lab, workers: list[str], source: Path) -> None:
    """For a bootstrapped cluster (``test_bootstrap_lab.py``): each worker's agent took the shim
    bootstrap shipped (its log says so; it compiled nothing, although a lab host sees this
    machine's compilers), and every running container's parent is that very binary."""
    shipped = f"/var/cache/clusterctl/{program_key(PROGRAMS['ccl-shim'], source / 'node_runtime')}/ccl-shim"
    for worker in workers:
        out = in_host(lab, "grep -h 'ccl-shim:' /var/log/clusterctl/clusterctl-node.log; "
                           "for p in $(pgrep -x ccl-shim); do echo EXE $(readlink /proc/$p/exe); done", host=worker)
        assert f"ccl-shim: prebuilt {shipped}" in out and "ccl-shim: compiled" not in out, f"{worker}: {out}"
        exes = {line.split()[1] for line in out.splitlines() if line.startswith("EXE ") and len(line.split()) == 2}
        assert exes <= {shipped}, f"{worker}: {out}"  # (a process gone between pgrep and readlink prints no path)
