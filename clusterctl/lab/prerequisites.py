"""What the machine needs before it can host a lab, checked up front with one actionable line.

The lab creates network namespaces, veths and mounts, so it needs root and three tools:
``ip`` (iproute2), ``unshare`` (util-linux) and ``sshd`` (openssh-server; sshd insists on being
started by its absolute path, so we resolve it here). ``tini`` is optional: without it PID 1 of
a host is a shell reaper loop. The check takes the effective uid and ``PATH`` as arguments so a
test can exercise the real lookups against a real empty directory instead of mocking.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from clusterctl.lab.errors import PrerequisiteMissing

#: tool -> Debian package that provides it
REQUIRED_TOOLS: dict[str, str] = {"ip": "iproute2", "unshare": "util-linux", "sshd": "openssh-server"}


@dataclass(frozen=True)
class LabTools:
    """Absolute paths of the programs a lab runs."""

    ip: str
    unshare: str
    sshd: str
    tini: str | None


def _which(tool: str, path: str) -> str | None:
    # shutil.which falls back to os.defpath for an empty PATH; an empty PATH means "nowhere"
    return shutil.which(tool, path=path) if path else None


def check_prerequisites(*, euid: int | None = None, path: str | None = None) -> LabTools:
    """Return the tools' paths, or raise ``PrerequisiteMissing`` saying what to do.

    ``euid`` defaults to this process's effective uid, ``path`` to ``$PATH`` (root's PATH on
    Debian includes the sbin folders where ``ip`` and ``sshd`` live).
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise PrerequisiteMissing(
            "clusterctl lab needs root (it creates network namespaces, interfaces and mounts): "
            "run it as root, e.g. `sudo clusterctl lab up 3`"
        )
    path = os.environ.get("PATH", "") if path is None else path
    found = {tool: _which(tool, path) for tool in REQUIRED_TOOLS}
    missing = [tool for tool, where in found.items() if where is None]
    if missing:
        packages = " ".join(sorted({REQUIRED_TOOLS[t] for t in missing}))
        raise PrerequisiteMissing(
            f"clusterctl lab needs {', '.join(missing)}, not found on PATH: apt-get install {packages}"
        )
    return LabTools(
        ip=os.path.abspath(found["ip"]),
        unshare=os.path.abspath(found["unshare"]),
        sshd=os.path.abspath(found["sshd"]),
        tini=_which("tini", path),
    )
