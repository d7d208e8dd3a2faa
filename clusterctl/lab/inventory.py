"""The files a lab hands to provisioners: ``inventory.ini`` and ``known_hosts``.

``inventory.ini`` is Ansible INI: every host in group ``nodes`` with ``ansible_host``,
``ansible_user`` and ``ansible_ssh_private_key_file``; ``[nodes:vars]`` points real Ansible's
ssh at the lab's known_hosts (strict checking, so keys are verified, never skipped) and gives
clusterctl the same path as ``clusterctl_known_hosts``. ``known_hosts`` holds each host's real
host key under its IP (port 22, so the plain ``IP ssh-ed25519 AAAA...`` form).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


class _Host(Protocol):
    name: str
    ip: str


def inventory_text(hosts: Sequence[_Host], key_path: Path, known_hosts_path: Path, group: str = "nodes") -> str:
    lines = [f"# clusterctl lab: {len(hosts)} hosts; `clusterctl lab down --dir {key_path.parent}` removes them", f"[{group}]"]
    for host in hosts:
        lines.append(
            f"{host.name} ansible_host={host.ip} ansible_user=root ansible_ssh_private_key_file={key_path}"
        )
    lines += [
        "",
        f"[{group}:vars]",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known_hosts_path} -o StrictHostKeyChecking=yes'",
        f"clusterctl_known_hosts={known_hosts_path}",
        "",
    ]
    return "\n".join(lines)


def known_hosts_text(entries: Sequence[tuple[str, str]]) -> str:
    """``entries``: (ip, "ssh-ed25519 AAAA...") pairs."""
    return "".join(f"{ip} {public_key}\n" for ip, public_key in entries)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
