"""The compiled container shim: ``shim/ccl-shim.c`` built by the agent, once per source version.

util-linux ``unshare`` as the parent of every container costs ~1.45 MB RSS each (a dynamically
linked program and its libc), cannot re-raise every signal its child died of, and leaves the
container's setup to a Python launcher (~20 ms of CPU per start). ``ccl-shim`` is a few hundred
lines of C that does the namespaces, the fork, the whole container setup and the exit-status
reporting, at ~0.08 MB RSS (musl, static) and ~1 ms per start.

It is one entry of ``node_runtime.native``'s registry of C helpers, which owns how a binary is
found or built: prebuilt by ``clusterctl bootstrap`` into ``/var/cache/clusterctl`` (real workers
have no compiler), else compiled at agent start, named by the hash of the source so an upgraded
agent never runs an old shim. No binary (no compiler, a failed build): the runtime falls back to
``unshare`` + ``launcher.py``, which stays supported and tested.

The binary is always called ``ccl-shim`` (in a directory named by the hash), so the process name
that ``ps`` and the benchmarks see is stable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from node_runtime.native import DEFAULT_COMPILERS, PROGRAMS, SHARED_CACHE, find_or_build

__all__ = ["DEFAULT_COMPILERS", "SHARED_CACHE", "SHIM", "SHIM_NAME", "SOURCE", "build_shim"]

SHIM = PROGRAMS["ccl-shim"]
SHIM_NAME = SHIM.name
SOURCE = SHIM.source_path()


def build_shim(dest_dir: Path, *, compilers: Sequence[str] = DEFAULT_COMPILERS, source: Path = SOURCE,
               shared_cache: Path | None = SHARED_CACHE) -> Path | None:
    """The path of a trusted ``ccl-shim`` (prebuilt, or built from ``source`` under ``dest_dir``), or None
    when there is none (the caller then uses util-linux ``unshare``). ``shared_cache`` (machine-wide,
    root's) holds bootstrap's prebuilt shim and spares further agents the ~0.5 s compile; None to use
    only ``dest_dir``."""
    return find_or_build(SHIM, dest_dir, compilers=compilers, shared_cache=shared_cache, source=source)
