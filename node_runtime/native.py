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
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

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
