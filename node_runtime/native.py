"""Our C helpers: which small programs the node agent runs, and how it gets a binary it can trust.

Some hot paths are a few hundred lines of C instead of Python (``ccl-shim``, each container's
parent). They ship as **source** inside the package: nothing architecture-specific is built at
install time, and a binary is always named by the hash of the source it came from, so an upgraded
agent never runs an old helper and old builds are simply ignored. ``PROGRAMS`` is the registry;
each entry says what the agent does without it (every helper has a Python fallback, which stays
supported and tested).

``find_or_build`` gets the binary, trying the cheapest trustworthy source first:

1. **prebuilt** — ``/var/cache/clusterctl/<name>-<sha16>/<name>``, put there by ``clusterctl
   bootstrap``/``upgrade`` (built once, static, on the controller: real workers are air-gapped and
   have no compiler). Only the controller's upload writes this slot, so its presence means shipped;
2. **built earlier** by this agent — ``<state>/<name>-<sha16>/<name>``;
3. **built by another agent on this machine** — ``/var/cache/clusterctl/<name>-<sha16>/<cc>/<name>``
   (kept per compiler: installing musl-tools later gets the smaller build), copied into the state dir;
4. **compiled** here: ``musl-gcc`` (Debian's musl-tools) → ``cc`` → ``gcc``, each ``-static`` first
   (a static musl binary is ~0.08 MB resident, glibc static ~0.7 MB, dynamic ~1 MB).

A binary is trusted only when it is a regular executable owned by us (root: the agent runs as
root to isolate containers) and neither it nor its folder is group- or world-writable — it runs
as root, a container's parent. ``find_or_build`` never raises: None means "use the fallback".

``build_static`` is the controller's side: one static build per program, for bootstrap to ship.

``prune_shared_cache`` keeps that cache from growing by ~55 KB per helper and upgrade forever
(``python -m node_runtime.native prune``, run by the install role with the *new* release's python
right after shipping). It removes a ``<name>-<sha16>/`` folder only when no release that may run
on this host uses it and no process runs from it:

- kept: the new release's keys (its agent starts on them after the switch) and the keys of the
  release ``current`` points to, asked of that release's own python (during an upgrade that is
  the release the running agent was started from, and the one ``rollback`` switches back to;
  after it, the next upgrade keeps it until then). If that release cannot say, nothing is pruned;
- kept: any folder a running process executes a file from (``/proc/*/exe``): adopted container
  shims and pumps of an agent not yet restarted;
- removed: the rest, renamed away first so no one sees a half-deleted folder.

Only folders bootstrap shipped (``<name>-<sha16>/<name>``) are pruned: a folder holding nothing but
agents' own per-compiler builds (``<name>-<sha16>/<cc>/<name>``, on hosts with a compiler) is
left alone; an agent copies those into its state dir before running them.

Why the install role and not the agent at start: an agent sees only its own keys, not which other
agents on the machine (another release mid-upgrade, other clusters' agents on a shared machine
such as the lab or ``clusterctl up``) found their binary there and will exec it again later (a
new container) without a process of it running at that moment. The role knows both releases a
host can run, and on a host there is one node service.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

log = logging.getLogger(__name__)

#: the ``node_runtime`` package: program sources are named relative to it, so the controller can
#: build them from another source tree (``clusterctl bootstrap --source``)
PACKAGE_ROOT = Path(__file__).resolve().parent
#: musl first: a static musl binary is ~0.08 MB resident, a static glibc one ~0.7 MB (glibc's static
#: start-up touches most of its ~700 KB), a dynamic one ~1 MB (libc's pages mapped per process)
DEFAULT_COMPILERS: tuple[str, ...] = ("musl-gcc", "cc", "gcc")
#: machine-wide cache (root's): bootstrap's prebuilt binaries and every agent's builds
SHARED_CACHE = Path("/var/cache/clusterctl")
BUILD_TIMEOUT = 120.0
STATIC_FLAGS: tuple[str, ...] = ("-O2", "-static", "-s")
DYNAMIC_FLAGS: tuple[str, ...] = ("-O2", "-s")


@dataclass(frozen=True)
class NativeProgram:
    """One C helper: its binary's name (what ``ps`` shows), its source and what happens without it."""

    name: str
    source: str                       # path of the one C file, relative to the node_runtime package
    fallback: str                     # what the agent does when there is no binary (for the log)
    cflags: tuple[str, ...] = ()      # extra compiler flags (part of the key when set)

    def source_path(self, package_root: Path = PACKAGE_ROOT) -> Path:
        return Path(package_root) / self.source


#: the registry: every C helper bootstrap ships and agents build
PROGRAMS: dict[str, NativeProgram] = {p.name: p for p in (
    NativeProgram("ccl-shim", "runtime/shim/ccl-shim.c",
                  fallback="containers use util-linux unshare and the Python launcher"),
    NativeProgram("ccl-pump", "proxy/pump/ccl-pump.c",
                  fallback="the Service proxy moves bytes with the Python splice pump"),
)}


def program(name: str) -> NativeProgram:
    return PROGRAMS[name]


def source_key(prog: NativeProgram, code: bytes) -> str:
    """``<name>-<sha16>``: the folder a binary of this exact source (and flags) lives in."""
    h = hashlib.sha256(code)
    if prog.cflags:
        h.update(b"\0" + " ".join(prog.cflags).encode())
    return f"{prog.name}-{h.hexdigest()[:16]}"


def program_key(prog: NativeProgram, package_root: Path = PACKAGE_ROOT) -> str:
    """The key of ``prog`` as built from ``package_root`` (OSError when its source is missing)."""
    return source_key(prog, prog.source_path(package_root).read_bytes())


def prebuilt_path(prog: NativeProgram, key: str, cache_root: Path = SHARED_CACHE) -> Path:
    """Where bootstrap puts the binary of ``key``, and where the agent looks for it first."""
    return Path(cache_root) / key / prog.name


def find_or_build(prog: NativeProgram | str, dest_dir: Path, *, compilers: Sequence[str] = DEFAULT_COMPILERS,
                  shared_cache: Path | None = SHARED_CACHE, source: Path | None = None) -> Path | None:
    """A trusted binary of ``prog`` (prebuilt, built earlier, or compiled now under ``dest_dir``),
    or None when there is none and no compiler made one (the caller falls back). Never raises."""
    prog = PROGRAMS[prog] if isinstance(prog, str) else prog
    try:
        return _find_or_build(prog, Path(dest_dir), compilers, shared_cache, source or prog.source_path())
    except Exception as exc:  # a helper is an optimisation: never let it stop the agent
        log.warning("%s: unexpected error looking for or building it (%s): %s", prog.name, exc, prog.fallback)
        return None


def _find_or_build(prog: NativeProgram, dest_dir: Path, compilers: Sequence[str], shared_cache: Path | None,
                   source: Path) -> Path | None:
    try:
        code = source.read_bytes()
    except OSError as exc:
        log.warning("%s: source %s unreadable (%s): %s", prog.name, source, exc, prog.fallback)
        return None
    key = source_key(prog, code)
    if shared_cache is not None:
        shipped = prebuilt_path(prog, key, shared_cache)
        if trusted(shipped):
            log.info("%s: prebuilt %s (shipped by bootstrap, not compiled here)", prog.name, shipped)
            return shipped
    target = dest_dir / key / prog.name
    if trusted(target):
        log.info("%s: %s (built earlier)", prog.name, target)
        return target
    for name in compilers:
        cc = shutil.which(name)
        if cc is None:
            continue
        # the shared copy is kept per compiler: installing musl-tools later gets the smaller build
        cached = Path(shared_cache) / key / Path(name).name / prog.name if shared_cache is not None else None
        if cached is not None and trusted(cached) and _install(cached, target):
            log.info("%s: %s (copied from this machine's cache %s)", prog.name, target, cached)
            return target
        for flags in (STATIC_FLAGS, DYNAMIC_FLAGS):
            built = _compile(prog, cc, flags, source, target)
            if built is None:
                continue
            if built is False:
                break
            log.info("%s: compiled %s with %s %s", prog.name, target, cc, " ".join(flags))
            if cached is not None:
                _install(target, cached)
            return target
        log.warning("%s: building it with %s failed; trying the next compiler", prog.name, cc)
    log.warning("%s: no prebuilt binary and no C compiler built it (tried %s): %s", prog.name,
                ", ".join(compilers) or "none", prog.fallback)
    return None


def build_static(prog: NativeProgram | str, out_dir: Path, *, compilers: Sequence[str] = DEFAULT_COMPILERS,
                 package_root: Path = PACKAGE_ROOT) -> Path | None:
    """``out_dir/<name>-<sha16>/<name>``, a static build of ``prog`` from ``package_root`` (kept when it
    is there already), or None when no compiler here can build it statically. Never raises."""
    prog = PROGRAMS[prog] if isinstance(prog, str) else prog
    source = prog.source_path(package_root)
    try:
        target = Path(out_dir) / source_key(prog, source.read_bytes()) / prog.name
        if trusted(target):
            return target
        for name in compilers:
            cc = shutil.which(name)
            if cc is not None and _compile(prog, cc, STATIC_FLAGS, source, target):
                log.info("%s: compiled %s with %s (static)", prog.name, target, cc)
                return target
    except Exception as exc:
        log.warning("%s: static build from %s failed: %s", prog.name, source, exc)
    return None


def _compile(prog: NativeProgram, cc: str, flags: Sequence[str], source: Path, target: Path) -> Path | bool | None:
    """Compile into ``target`` atomically: the path, None when these flags failed (try others), or
    False when the compiler cannot run at all (try the next compiler)."""
    _make_dir(target.parent)
    tmp = target.with_name(f".{prog.name}-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        done = subprocess.run([cc, *flags, *prog.cflags, "-o", str(tmp), str(source)], capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("%s: running %s failed: %s", prog.name, cc, exc)
        tmp.unlink(missing_ok=True)
        return False
    if done.returncode != 0 or not tmp.is_file():
        log.debug("%s: %s %s: %s", prog.name, cc, " ".join(flags), done.stderr.strip()[-500:])
        tmp.unlink(missing_ok=True)
        return None
    os.chmod(tmp, 0o755)  # whatever the umask: trusted() accepts only a binary nobody else can write
    os.replace(tmp, target)
    return target


def trusted(path: Path) -> bool:
    """An executable we own that nobody else can write or swap (it runs as root, a container's parent)."""
    try:
        st, parent = path.stat(), path.parent.stat()
    except OSError:
        return False
    uid = os.geteuid()
    return (path.is_file() and os.access(path, os.X_OK) and st.st_uid == uid and not st.st_mode & 0o022
            and parent.st_uid in (uid, 0) and not parent.st_mode & 0o022)


def _make_dir(path: Path) -> None:
    """``path`` and missing parents, each 0755 whatever the umask (trusted() checks the binary's folder,
    and a shared ``<name>-<sha16>`` folder made here may later hold bootstrap's prebuilt binary)."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o755)


def _install(src: Path, dest: Path) -> bool:
    """Copy a built binary atomically (several agents may start at once); False when not possible."""
    try:
        _make_dir(dest.parent)
        tmp = dest.with_name(f".{dest.name}-{os.getpid()}-{secrets.token_hex(4)}")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
        return True
    except OSError as exc:
        log.debug("native helper cache %s: %s", dest, exc)
        return False


# --- keeping the shared cache small -----------------------------------------------------------

#: what another release's python prints: the keys of its own helpers (only names every release
#: with prebuilt helpers has, so a release from before pruning existed can answer too)
_KEYS_PROBE = ("from node_runtime.native import PROGRAMS, program_key; "
               "print(' '.join(program_key(p) for p in PROGRAMS.values()))")
_KEY_FORMAT = re.compile(r"(?P<name>.+)-[0-9a-f]{16}")


def current_keys(package_root: Path = PACKAGE_ROOT) -> list[str]:
    """``<name>-<sha16>`` of every helper of this release (those whose source is there)."""
    return sorted(program_key(p, package_root) for p in PROGRAMS.values() if p.source_path(package_root).is_file())


def release_keys(python: Path, *, timeout: float = 60.0) -> list[str] | None:
    """The helper keys of the release whose interpreter is ``python`` (its own registry and sources),
    [] when there is no such interpreter, None when it exists but cannot say (then prune nothing)."""
    if not Path(python).exists():
        return []
    try:
        done = subprocess.run([str(python), "-c", _KEYS_PROBE], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot ask %s for its helper keys: %s", python, exc)
        return None
    keys = done.stdout.split()
    if done.returncode != 0 or not all(_KEY_FORMAT.fullmatch(k) for k in keys):
        log.warning("%s could not name its helper keys (exit %s): %s", python, done.returncode, done.stderr.strip()[-300:])
        return None
    return keys


def executing_paths(proc_root: Path = Path("/proc")) -> set[str]:
    """The executable of every process this host (PID namespace) runs, as ``/proc/PID/exe`` names it."""
    paths = set()
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            target = os.readlink(entry / "exe")
        except OSError:  # a kernel thread, a process gone meanwhile, or not ours to read
            continue
        paths.add(target.removesuffix(" (deleted)"))
    return paths


def prune_shared_cache(cache_root: Path, keep: Iterable[str], *, proc_root: Path = Path("/proc")) -> list[Path]:
    """Remove ``cache_root/<name>-<sha16>/`` folders holding a shipped helper whose key is not in
    ``keep`` and from which no running process executes; returns what was removed. Never raises
    (an optimisation must not fail an install): what cannot be removed is left and logged."""
    keep, removed = set(keep), []
    try:
        stale = [d for d in sorted(Path(cache_root).iterdir())
                 if d.name not in keep and d.is_dir() and not d.is_symlink() and _shipped_helper_folder(d)]
        running = executing_paths(proc_root) if stale else set()
    except OSError as exc:
        log.warning("native helper cache %s: cannot look for stale helpers: %s", cache_root, exc)
        return []
    for folder in stale:
        inside = str(folder) + "/"
        if any(path.startswith(inside) for path in running):
            log.info("%s: kept, a running process executes from it", folder)
            continue
        # renamed first: whoever looks sees the whole folder or none of it
        doomed = folder.with_name(f".{folder.name}.pruned.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            folder.rename(doomed)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                log.warning("%s: cannot remove it: %s", folder, exc)
                continue
            doomed = folder  # a folder the filesystem cannot rename (overlayfs, from a lower layer): in place
        shutil.rmtree(doomed, ignore_errors=True)
        if doomed.exists():
            log.warning("%s: could not remove all of it", doomed)
            continue
        removed.append(folder)
    return removed


def _shipped_helper_folder(folder: Path) -> bool:
    match = _KEY_FORMAT.fullmatch(folder.name)
    return bool(match) and match.group("name") in PROGRAMS and os.path.lexists(folder / match.group("name"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node_runtime.native",
                                     description="Maintain the machine-wide cache of our C helpers.")
    actions = parser.add_subparsers(dest="action", required=True)
    prune = actions.add_parser("prune", help="remove helper folders no release here uses and no process runs from")
    prune.add_argument("cache", type=Path, help="the shared cache (/var/cache/clusterctl)")
    prune.add_argument("--keep-release", type=Path, action="append", default=[], metavar="PYTHON",
                       help="also keep the helpers of the release with this interpreter (e.g. current/venv/bin/python)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    keep = set(current_keys())
    for python in args.keep_release:
        keys = release_keys(python)
        if keys is None:
            print(f"SKIPPED: the release of {python} cannot name its helpers; nothing removed")
            return 0
        keep.update(keys)
    for folder in prune_shared_cache(args.cache, keep):
        print(f"REMOVED {folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
