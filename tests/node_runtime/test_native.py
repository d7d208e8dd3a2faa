"""The registry of our C helpers and how an agent finds or builds a binary it can trust.

Real compilers (musl-gcc, cc are on this machine kind), real files and modes; ``compilers=()``
stands for an air-gapped worker with no compiler at all.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_runtime.native import (PACKAGE_ROOT, PROGRAMS, NativeProgram, build_static, find_or_build, prebuilt_path,
                                 program_key, source_key)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binaries are trusted when root owns them (CI runs as root)")

SHIM = PROGRAMS["ccl-shim"]


def is_static(binary: Path) -> bool:
    """No program interpreter in the ELF headers: nothing for the loader to find on a bare host."""
    out = subprocess.run(["readelf", "-l", str(binary)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return "INTERP" not in out.stdout


@pytest.fixture(scope="module")
def controller_build(tmp_path_factory) -> Path:
    built = build_static(SHIM, tmp_path_factory.mktemp("controller"))
    assert built is not None, "musl-gcc or cc is on this machine kind: a static build must work"
    return built


def test_every_registered_program_has_its_source():
    assert "ccl-shim" in PROGRAMS
    for name, prog in PROGRAMS.items():
        assert prog.name == name and prog.source_path().is_file() and prog.fallback
        assert prog.source_path().resolve().is_relative_to(PACKAGE_ROOT)  # shipped inside the package
        assert program_key(prog).startswith(f"{name}-") and len(program_key(prog)) == len(name) + 17


def test_key_follows_the_source_and_the_flags(tmp_path):
    code = SHIM.source_path().read_bytes()
    assert source_key(SHIM, code) == program_key(SHIM)
    assert source_key(SHIM, code + b"\n") != source_key(SHIM, code)
    flagged = NativeProgram(SHIM.name, SHIM.source, SHIM.fallback, cflags=("-DX=1",))
    assert source_key(flagged, code) != source_key(SHIM, code)


def test_controller_build_is_static_and_hash_named(controller_build, tmp_path):
    assert controller_build.name == "ccl-shim" and controller_build.parent.name == program_key(SHIM)
    assert is_static(controller_build)
    assert (controller_build.stat().st_mode & 0o777) == 0o755
    mtime = controller_build.stat().st_mtime_ns
    # kept, not rebuilt, and found without any compiler
    assert build_static(SHIM, controller_build.parent.parent, compilers=()) == controller_build
    assert controller_build.stat().st_mtime_ns == mtime


def test_controller_build_from_another_source_tree(tmp_path):
    root = tmp_path / "tree"
    (root / "runtime" / "shim").mkdir(parents=True)
    shutil.copyfile(SHIM.source_path(), root / SHIM.source)
    with open(root / SHIM.source, "a") as fh:
        fh.write("\n/* release N+1 */\n")
    built = build_static(SHIM, tmp_path / "out", package_root=root)
    assert built is not None and built.parent.name == program_key(SHIM, root) != program_key(SHIM)


def test_no_static_compiler_on_the_controller_gives_none(tmp_path):
    assert build_static(SHIM, tmp_path, compilers=()) is None
    assert build_static(SHIM, tmp_path, compilers=("false", "no-such-cc-here")) is None
    assert list(tmp_path.rglob("ccl-shim")) == []


def ship(binary: Path, cache: Path) -> Path:
    """What bootstrap's upload leaves on a host: root-owned 0755 in a 0755 folder named by the key."""
    dest = prebuilt_path(SHIM, binary.parent.name, cache)
    dest.parent.mkdir(parents=True)
    os.chmod(dest.parent, 0o755)
    shutil.copyfile(binary, dest)
    os.chmod(dest, 0o755)
    return dest


def test_a_shipped_binary_is_used_without_any_compiler(controller_build, tmp_path, caplog):
    shipped = ship(controller_build, tmp_path / "cache")
    with caplog.at_level(logging.INFO, logger="node_runtime.native"):
        found = find_or_build(SHIM, tmp_path / "state", compilers=(), shared_cache=tmp_path / "cache")
    assert found == shipped
    assert f"ccl-shim: prebuilt {shipped}" in caplog.text
    assert not (tmp_path / "state").exists()  # nothing built or copied


def test_a_shipped_binary_wins_over_an_earlier_local_build(controller_build, tmp_path):
    local = find_or_build(SHIM, tmp_path / "state", compilers=("cc",), shared_cache=None)
    assert local is not None
    shipped = ship(controller_build, tmp_path / "cache")
    assert find_or_build(SHIM, tmp_path / "state", shared_cache=tmp_path / "cache") == shipped


def test_a_binary_of_another_source_is_not_used(controller_build, tmp_path):
    ship(controller_build, tmp_path / "cache")
    changed = tmp_path / "changed.c"
    changed.write_bytes(SHIM.source_path().read_bytes() + b"\n/* upgraded agent */\n")
    assert find_or_build(SHIM, tmp_path / "state", compilers=(), shared_cache=tmp_path / "cache", source=changed) is None


@pytest.mark.parametrize("weak", ["file", "folder"])
def test_a_shipped_binary_others_can_write_is_not_trusted(controller_build, tmp_path, weak, caplog):
    shipped = ship(controller_build, tmp_path / "cache")
    os.chmod(shipped if weak == "file" else shipped.parent, 0o777 if weak == "folder" else 0o775)
    assert find_or_build(SHIM, tmp_path / "state", compilers=(), shared_cache=tmp_path / "cache") is None
    assert "no prebuilt binary and no C compiler" in caplog.text
    built = find_or_build(SHIM, tmp_path / "state", shared_cache=tmp_path / "cache")
    assert built is not None and built != shipped and built.is_relative_to(tmp_path / "state")


def test_a_shipped_binary_owned_by_someone_else_is_not_trusted(controller_build, tmp_path):
    shipped = ship(controller_build, tmp_path / "cache")
    os.chown(shipped, 65534, 65534)
    assert find_or_build(SHIM, tmp_path / "state", compilers=(), shared_cache=tmp_path / "cache") is None


def test_never_raises_when_the_state_dir_cannot_be_made(tmp_path, caplog):
    (tmp_path / "state").write_text("a file where the state dir should be")
    assert find_or_build(SHIM, tmp_path / "state", shared_cache=None) is None
    assert "ccl-shim" in caplog.text


def test_missing_source_gives_none(tmp_path):
    assert find_or_build(SHIM, tmp_path, shared_cache=None, source=tmp_path / "gone.c") is None


def test_folders_made_for_builds_are_0755_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        built = find_or_build(SHIM, tmp_path / "state", compilers=("cc",), shared_cache=tmp_path / "cache")
    finally:
        os.umask(old)
    assert built is not None
    key_dir = tmp_path / "cache" / built.parent.name
    for folder in (built.parent, key_dir, key_dir / "cc", tmp_path / "cache"):
        assert (folder.stat().st_mode & 0o777) == 0o755, folder
    # so bootstrap's binary shipped later into the same <name>-<sha16> folder is trusted
    assert find_or_build(SHIM, tmp_path / "other", compilers=(), shared_cache=tmp_path / "cache") is None
    shutil.copyfile(built, key_dir / "ccl-shim")
    os.chmod(key_dir / "ccl-shim", 0o755)
    assert find_or_build(SHIM, tmp_path / "other", compilers=(), shared_cache=tmp_path / "cache") == key_dir / "ccl-shim"


# --- pruning the shared cache (python -m node_runtime.native prune, run by the install role) --------

OLD, ACTIVE = "ccl-shim-00000000000000aa", "ccl-pump-00000000000000bb"


def helper_tree(cache: Path, *keys: str) -> None:
    """``cache/<key>/<name>`` for each key, as bootstrap ships them (a real executable inside)."""
    for key in keys:
        (cache / key).mkdir(parents=True)
        shutil.copyfile("/bin/sleep", cache / key / key.rsplit("-", 1)[0])
        os.chmod(cache / key / key.rsplit("-", 1)[0], 0o755)


def fake_release_python(path: Path, script: str) -> Path:
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def test_prune_removes_only_helpers_no_release_uses_and_none_runs(tmp_path):
    from node_runtime.native import current_keys, prune_shared_cache

    cache = tmp_path / "cache"
    ours = current_keys()
    helper_tree(cache, OLD, ACTIVE, *ours)
    (cache / OLD / "musl-gcc").mkdir()                      # an agent's per-compiler build of the old source
    (cache / "ccl-pump-00000000000000ee" / "musl-gcc").mkdir(parents=True)  # only an agent's build: not shipped
    (cache / "agent").mkdir()                                # not a helper folder: never touched
    (cache / "ccl-shim-notahexkey").mkdir()
    (cache / "other-00000000000000cc").mkdir()               # not one of our programs
    removed = prune_shared_cache(cache, [*ours, ACTIVE])
    assert removed == [cache / OLD]
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [ACTIVE, *ours, "agent", "ccl-shim-notahexkey", "other-00000000000000cc", "ccl-pump-00000000000000ee"])
    assert prune_shared_cache(cache, [*ours, ACTIVE]) == []


def test_a_helper_a_process_runs_from_survives_until_it_exits(tmp_path):
    """An agent not yet restarted (or its adopted shims) runs the old binary: it keeps working and
    its folder stays; once nothing runs from it, the next prune removes it."""
    from node_runtime.native import current_keys, prune_shared_cache

    cache = tmp_path / "cache"
    helper_tree(cache, OLD)
    running = subprocess.Popen([str(cache / OLD / "ccl-shim"), "600"])
    try:
        deadline = time.monotonic() + 30      # exec done: /proc/PID/exe names the old binary
        while os.readlink(f"/proc/{running.pid}/exe") != str(cache / OLD / "ccl-shim"):
            assert time.monotonic() < deadline, os.readlink(f"/proc/{running.pid}/exe")
            time.sleep(0.05)
        assert prune_shared_cache(cache, current_keys()) == []
        assert (cache / OLD / "ccl-shim").is_file() and running.poll() is None
    finally:
        running.kill()
        running.wait(timeout=30)
    assert prune_shared_cache(cache, current_keys()) == [cache / OLD]
    assert not (cache / OLD).exists()


def test_prune_command_keeps_the_active_release_and_prunes_nothing_when_it_cannot_say(tmp_path):
    from node_runtime.native import current_keys, release_keys

    assert sorted(release_keys(Path(sys.executable))) == current_keys()     # a release names its own keys
    cache = tmp_path / "cache"
    helper_tree(cache, OLD, ACTIVE, *current_keys())

    def prune(*options: str) -> str:
        out = subprocess.run([sys.executable, "-m", "node_runtime.native", "prune", str(cache), *options],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    broken = fake_release_python(tmp_path / "broken-python", "echo 'ImportError: no node_runtime' >&2; exit 1")
    assert "SKIPPED" in prune("--keep-release", str(broken))
    assert {OLD, ACTIVE} <= {p.name for p in cache.iterdir()}                 # nothing removed
    active = fake_release_python(tmp_path / "active-python", f"echo {ACTIVE} ccl-shim-00000000000000dd")
    assert prune("--keep-release", str(active)) == f"REMOVED {cache / OLD}\n"
    assert prune("--keep-release", str(tmp_path / "no-such-release" / "python")) == f"REMOVED {cache / ACTIVE}\n"
    assert sorted(p.name for p in cache.iterdir()) == current_keys()          # the running release's own stay
