"""The files a lab hands to provisioners: ``inventory.ini`` and ``known_hosts``.

``inventory.ini`` is Ansible INI: every host in group ``nodes`` with ``ansible_host``,
``ansible_user`` and ``ansible_ssh_private_key_file``; ``[nodes:vars]`` points real Ansible's
ssh at the lab's known_hosts (strict checking, so keys are verified, never skipped) and gives
clusterctl the same path as ``clusterctl_known_hosts`` (and, since hosts share the machine's
/usr, names the Python real Ansible should use, sparing it interpreter discovery). ``known_hosts`` holds each host's real
host key under its IP (port 22, so the plain ``IP ssh-ed25519 AAAA...`` form).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


HOST_PYTHON = "/usr/bin/python3"


class _Host(Protocol):
    name: str
    ip: str


def ssh_option_path(path: Path | str) -> str:
    """A path as an ssh ``-o`` value: ssh splits values at spaces (UserKnownHostsFile takes a
    list), so a path with whitespace or quotes is double-quoted, which ssh understands."""
    text = str(path)
    return f'"{text}"' if any(c.isspace() or c in "'\"" for c in text) else text


def inventory_text(hosts: Sequence[_Host], key_path: Path, known_hosts_path: Path, group: str = "nodes") -> str:
    # Plain paths come out plain; a path with spaces is quoted the way Ansible reads it back:
    # host-line values are shlex-split, [group:vars] values are Python string literals, and
    # ansible_ssh_common_args is shlex-split once more before it reaches ssh.
    key = shlex.quote(str(key_path))
    common_args = f"-o {shlex.quote('UserKnownHostsFile=' + ssh_option_path(known_hosts_path))} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    lines = [f"# clusterctl lab: {len(hosts)} hosts; `clusterctl lab down --dir {shlex.quote(str(key_path.parent))}` removes them", f"[{group}]"]
    for host in hosts:
        lines.append(f"{host.name} ansible_host={host.ip} ansible_user=root ansible_ssh_private_key_file={key}")
    lines += [
        "",
        f"[{group}:vars]",
        f"ansible_ssh_common_args={common_args!r}",
        f"clusterctl_known_hosts={shlex.quote(str(known_hosts_path))}",
    ]
    if os.path.exists(HOST_PYTHON):
        # hosts share the machine's /usr: spare real Ansible its interpreter discovery round-trip
        lines.append(f"ansible_python_interpreter={HOST_PYTHON}")
    lines.append("")
    return "\n".join(lines)



def known_hosts_text(entries: Sequence[tuple[str, str]]) -> str:
    """``entries``: (ip, "ssh-ed25519 AAAA...") pairs."""
    return "".join(f"{ip} {public_key}\n" for ip, public_key in entries)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
