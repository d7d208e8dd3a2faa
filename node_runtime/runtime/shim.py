"""The compiled container shim: ``shim/ccl-shim.c`` built by the agent, once per source version.

util-linux ``unshare`` as the parent of every container costs ~1.45 MB RSS each (a dynamically
linked program and its libc), cannot re-raise every signal its child died of, and leaves the
container's setup to a Python launcher (~20 ms of CPU per start). ``ccl-shim`` is a few hundred
lines of C that does the namespaces, the fork, the whole container setup and the exit-status
reporting, at ~0.08 MB RSS (musl, static) and ~1 ms per start.

It is shipped as source (no binary in the package, nothing architecture-specific to build at
install time) and compiled at agent start into the state dir, named by the hash of the source so
an upgraded agent builds the new one and old builds are simply ignored. Compilers are tried in
order (``musl-gcc`` from Debian's ``musl-tools`` first, then ``cc``/``gcc``), each ``-static``
first (fewer pages per shim), then dynamic. No compiler (or a failed build): the
runtime falls back to ``unshare`` + ``launcher.py``, which stays supported and tested.

The binary is always called ``ccl-shim`` (in a directory named by the hash), so the process name
that ``ps`` and the benchmarks see is stable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("shim") / "ccl-shim.c"
SHIM_NAME = "ccl-shim"
#: musl first: a static musl shim is ~0.08 MB resident, a static glibc one ~0.7 MB (glibc's static
#: start-up touches most of its ~700 KB), a dynamic one ~1 MB (libc's pages mapped per process)
DEFAULT_COMPILERS: tuple[str, ...] = ("musl-gcc", "cc", "gcc")
BUILD_TIMEOUT = 120.0
#: machine-wide cache of built shims (root's; the agent runs as root to isolate containers)
SHARED_CACHE = Path("/var/cache/clusterctl")


def build_shim(dest_dir: Path, *, compilers: Sequence[str] = DEFAULT_COMPILERS, source: Path = SOURCE,
               shared_cache: Path | None = SHARED_CACHE) -> Path | None:
    """The path of a working ``ccl-shim`` built from ``source`` under ``dest_dir``, or None when
    there is no compiler or the build failed (the caller then uses util-linux ``unshare``).

    ``shared_cache`` (machine-wide, root's) spares every further agent on the machine the
    ~0.5 s compile (``clusterctl up`` nodes, tests); None to use only ``dest_dir``."""
    try:
        code = source.read_bytes()
    except OSError:
        log.warning("container shim source %s missing: using util-linux unshare", source)
        return None
    key = f"shim-{hashlib.sha256(code).hexdigest()[:16]}"
    target = Path(dest_dir) / key / SHIM_NAME
    if _usable(target):
        return target
    for name in compilers:
        cc = shutil.which(name)
        if cc is None:
            continue
        # the shared copy is kept per compiler: installing musl-tools later gets the smaller build
        cached = Path(shared_cache) / key / Path(name).name / SHIM_NAME if shared_cache is not None else None
        if cached is not None and _usable(cached) and _install(cached, target):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{SHIM_NAME}-{os.getpid()}")
        for flags in (["-O2", "-static", "-s"], ["-O2", "-s"]):
            try:
                done = subprocess.run([cc, *flags, "-o", str(tmp), str(source)], capture_output=True, text=True,
                                      timeout=BUILD_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.warning("building the container shim with %s failed: %s", cc, exc)
                break
            if done.returncode == 0:
                os.chmod(tmp, 0o755)  # whatever the umask: _usable trusts only a shim nobody else can write
                os.replace(tmp, target)
                if cached is not None:
                    _install(target, cached)
                return target
            log.debug("%s %s: %s", cc, " ".join(flags), done.stderr.strip()[-500:])
        log.warning("building the container shim with %s failed; trying the next compiler", cc)
    log.warning("no C compiler built the container shim (tried %s): containers use util-linux unshare "
                "and the Python launcher", ", ".join(compilers) or "none")
    return None


def _usable(path: Path) -> bool:
    """An executable we built: owned by us and writable by nobody else (it becomes every container's parent)."""
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_file() and os.access(path, os.X_OK) and st.st_uid == os.geteuid() and not st.st_mode & 0o022


def _install(src: Path, dest: Path) -> bool:
    """Copy a built shim atomically (several agents may start at once); False when not possible."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        tmp = dest.with_name(f".{SHIM_NAME}-{os.getpid()}-copy")
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, dest)
        return True
    except OSError as exc:
        log.debug("container shim cache %s: %s", dest, exc)
        return False
