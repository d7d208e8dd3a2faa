"""The lab's inventory reads back as Ansible reads it, plain paths and paths with spaces alike."""

from __future__ import annotations

import ast
import shlex
from dataclasses import dataclass
from pathlib import Path

from clusterctl.lab.inventory import inventory_text, known_hosts_text


@dataclass
class Host:
    name: str
    ip: str


HOSTS = [Host("h1", "10.200.3.11"), Host("h2", "10.200.3.12")]


def test_plain_paths_come_out_plain() -> None:
    text = inventory_text(HOSTS, Path("/lab/id_ed25519"), Path("/lab/known_hosts"))
    assert "[nodes]\nh1 ansible_host=10.200.3.11 ansible_user=root ansible_ssh_private_key_file=/lab/id_ed25519\n" in text
    assert "ansible_ssh_common_args='-o UserKnownHostsFile=/lab/known_hosts -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes'" in text
    assert "clusterctl_known_hosts=/lab/known_hosts" in text


def test_paths_with_spaces_survive_ansibles_parsing_and_sshs() -> None:
    text = inventory_text(HOSTS, Path("/my lab/id_ed25519"), Path("/my lab/known_hosts"))
    host_line = text.split("[nodes]\n")[1].splitlines()[0]
    # INI host lines: shlex-split, then key=value
    host_vars = dict(part.split("=", 1) for part in shlex.split(host_line)[1:])
    assert host_vars["ansible_ssh_private_key_file"] == "/my lab/id_ed25519"
    # [group:vars] values: a Python string literal; then ssh_common_args is shlex-split for ssh
    raw = next(line for line in text.splitlines() if line.startswith("ansible_ssh_common_args="))
    args = shlex.split(ast.literal_eval(raw.split("=", 1)[1]))
    assert args == ["-o", 'UserKnownHostsFile="/my lab/known_hosts"', "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes"]


def test_known_hosts_lines_are_plain_ip_entries() -> None:
    assert known_hosts_text([("10.200.3.11", "ssh-ed25519 AAAA1"), ("10.200.3.12", "ssh-ed25519 AAAA2")]) == (
        "10.200.3.11 ssh-ed25519 AAAA1\n10.200.3.12 ssh-ed25519 AAAA2\n"
    )
