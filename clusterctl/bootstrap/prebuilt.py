"""The prebuilt C helpers bootstrap ships: every program of ``node_runtime.native``, built static here.

Real workers are air-gapped and have nothing installed but the wheelhouse — no compiler — so an
agent that had to compile its helpers (``ccl-shim``, ...) would silently fall back to the slower
Python paths. The controller (where ``clusterctl bootstrap`` runs; ``.ci/setup`` installs
musl-tools there) builds each helper once, static (no loader or libc needed on the host), cached
by source hash under ``~/.cache/clusterctl/native/<name>-<sha16>/<name>``.

For each wheelhouse the helpers of its source are assembled into ``KEY/native/`` beside
``wheelhouse.tar``: a tree laid out exactly as the hosts' shared cache (``<name>-<sha16>/<name>``),
which the ``clusterctl_install`` role copies as is into ``/var/cache/clusterctl/`` on every host of
the controller's architecture (root-owned, 0755). The agent looks there first
(``node_runtime.native.find_or_build``) and compiles nothing. Keyed by source hash, a rerun uploads
nothing and an upgrade with new sources ships new binaries beside the old ones; the role then
removes the folders neither the new nor the active release uses and no process runs from
(``node_runtime.native.prune_shared_cache``).

No compiler here that builds statically: one warning, an empty tree, and hosts compile the helpers
themselves if they can, else fall back. This never stops a bootstrap.
"""

from __future__ import annotations

import logging
import os
import platform
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from node_runtime.native import DEFAULT_COMPILERS, PROGRAMS, build_static, program_key, trusted

log = logging.getLogger(__name__)

DEFAULT_CACHE = Path(os.environ.get("CLUSTERCTL_CACHE", Path.home() / ".cache" / "clusterctl")) / "native"


@dataclass(frozen=True)
class PrebuiltHelpers:
    arch: str                    # the controller's (platform.machine()): only hosts of this arch get them
    tree: Path                   # <name>-<sha16>/<name> for each built helper: copied as is to the hosts
    keys: tuple[str, ...]        # <name>-<sha16> of each helper in the tree
    missing: tuple[str, ...]     # helpers no compiler here could build statically


def build_prebuilt(tree: Path, *, source_root: Path, cache_root: Path = DEFAULT_CACHE,
                   compilers: Sequence[str] = DEFAULT_COMPILERS) -> PrebuiltHelpers:
    """The helpers of ``source_root/node_runtime`` in ``tree`` (assembled from the build cache, built
    there when missing). Never raises: what cannot be built or assembled is reported in ``missing``."""
    package_root = Path(source_root) / "node_runtime"
    built: dict[str, Path] = {}
    missing: list[str] = []
    for name, prog in sorted(PROGRAMS.items()):
        binary = build_static(prog, cache_root, compilers=compilers, package_root=package_root)
        if binary is None:
            missing.append(name)
        else:
            built[f"{binary.parent.name}/{name}"] = binary
    if missing:
        log.warning("no C compiler here builds %s statically (tried %s): hosts compile them if they can, "
                    "else use the slower fallbacks (Debian: apt-get install musl-tools)", ", ".join(missing),
                    ", ".join(compilers) or "none")
    try:
        _assemble(Path(tree), built)
    except OSError as exc:
        log.warning("cannot assemble the prebuilt helpers in %s (%s): hosts compile them if they can", tree, exc)
        return PrebuiltHelpers(platform.machine(), Path(tree), (), tuple(sorted(PROGRAMS)))
    return PrebuiltHelpers(platform.machine(), Path(tree), tuple(sorted(p.split("/")[0] for p in built)),
                           tuple(missing))


def expected_keys(source_root: Path) -> tuple[str, ...]:
    """The ``<name>-<sha16>`` of every helper as built from ``source_root`` (what a host's agent looks for)."""
    return tuple(sorted(program_key(p, Path(source_root) / "node_runtime") for p in PROGRAMS.values()))


def _assemble(tree: Path, built: dict[str, Path]) -> None:
    """Make ``tree`` hold exactly ``built`` (relative path → binary); left alone when it already does."""
    if _holds(tree, built):
        return
    work = tree.with_name(f".{tree.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        work.mkdir(parents=True)
        os.chmod(work, 0o755)
        for rel, binary in built.items():
            dest = work / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(dest.parent, 0o755)
            shutil.copyfile(binary, dest)
            os.chmod(dest, 0o755)
        if tree.exists():  # an older assembly (e.g. from before a compiler was installed): set aside
            old = tree.with_name(f".{tree.name}.old.{os.getpid()}.{secrets.token_hex(4)}")
            tree.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            work.rename(tree)
        except OSError:
            if not _holds(tree, built):  # else another run assembled the same tree at the same moment
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _holds(tree: Path, built: dict[str, Path]) -> bool:
    if not tree.is_dir():
        return False
    present = {p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()}
    return present == set(built) and all(trusted(tree / rel) and (tree / rel).read_bytes() == binary.read_bytes()
                                         for rel, binary in built.items())
