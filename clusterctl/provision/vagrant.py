"""Turn ``vagrant ssh-config`` output into an Ansible INI inventory.

Vagrant knows how to reach each VM (a forwarded port on 127.0.0.1, user ``vagrant``, a private
key per machine) and prints it as an OpenSSH client config. We read that text — never the
Vagrantfile — and write ``control_plane``/``workers`` groups with ``ansible_host``,
``ansible_port``, ``ansible_user`` and ``ansible_ssh_private_key_file``.

Host keys: vagrant's config turns checking off (``StrictHostKeyChecking no``,
``UserKnownHostsFile /dev/null``). We do not copy that. The inventory instead points
``UserKnownHostsFile`` at a known_hosts file of its own beside it with
``StrictHostKeyChecking=accept-new``: the first run records each VM's key, later runs verify it
(after ``vagrant destroy`` delete that file, since new VMs have new keys).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from clusterctl.provision.errors import InventoryError

#: names that make a machine a control-plane node when no --control-plane is given
_CONTROL_PLANE_NAME = re.compile(r"^(cp|control|master|controller|server)[-_]?\d*", re.IGNORECASE)


class VagrantConfigError(InventoryError):
    """``vagrant ssh-config`` output is missing, empty or malformed (message names file and line)."""


@dataclass
class VagrantHost:
    """One ``Host`` block of ``vagrant ssh-config``."""

    name: str
    options: dict[str, str] = field(default_factory=dict)  # lower-case keys, first value wins
    identity_files: list[str] = field(default_factory=list)
    line: int = 0

    @property
    def hostname(self) -> str:
        return self.options.get("hostname", self.name)

    @property
    def port(self) -> int:
        return int(self.options.get("port", "22"))

    @property
    def user(self) -> str:
        return self.options.get("user", "vagrant")

    @property
    def identity_file(self) -> str | None:
        return self.identity_files[0] if self.identity_files else None

    @property
    def disables_host_key_checking(self) -> bool:
        return self.options.get("stricthostkeychecking", "").lower() == "no" or self.options.get("userknownhostsfile") == "/dev/null"


def parse_ssh_config(text: str, *, source: str = "<vagrant ssh-config>") -> list[VagrantHost]:
    """Parse OpenSSH client config text as vagrant prints it (``Host`` blocks of ``Key value``)."""
    hosts: list[VagrantHost] = []
    current: VagrantHost | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?)\s*(?:=\s*|\s+)(.*)$", line)
        if not m:
            raise VagrantConfigError(f"{source}:{lineno}: expected 'Key value', got {line!r}")
        key, value = m.group(1).lower(), m.group(2).strip()
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise VagrantConfigError(f"{source}:{lineno}: cannot parse {line!r}: {exc}") from exc
        if key == "host":
            if not words:
                raise VagrantConfigError(f"{source}:{lineno}: Host without a name")
            current = VagrantHost(words[0], line=lineno)
            hosts.append(current)
            continue
        if current is None:
            raise VagrantConfigError(f"{source}:{lineno}: {m.group(1)} before any Host line")
        joined = " ".join(words) if words else value
        if key == "identityfile":
            current.identity_files.append(os.path.expanduser(joined))
        else:
            current.options.setdefault(key, joined)
        if key == "port" and not joined.isdigit():
            raise VagrantConfigError(f"{source}:{lineno}: Port must be a number, got {joined!r}")
    if not hosts:
        raise VagrantConfigError(f"{source}: no Host entries (is the Vagrant environment up? `vagrant status`)")
    return hosts


def pick_control_plane(hosts: list[VagrantHost], requested: list[str] | None) -> list[str]:
    """The control-plane machines: those asked for, else those named like one, else the first."""
    names = [h.name for h in hosts]
    if requested:
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise VagrantConfigError(f"--control-plane {', '.join(unknown)}: not a machine of this Vagrant environment ({', '.join(names)})")
        return list(requested)
    matched = [n for n in names if _CONTROL_PLANE_NAME.match(n)]
    return matched or names[:1]


def _ini_value(value: str) -> str:
    # INI host values are read with shlex and then literal_eval: quote anything with spaces or quotes
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]+", value):
        return value
    return shlex.quote(value)


def render_inventory(
    hosts: list[VagrantHost],
    *,
    control_plane: list[str] | None = None,
    known_hosts: str | None = None,
    source: str = "vagrant ssh-config",
) -> str:
    """The INI inventory text for these machines."""
    cp = pick_control_plane(hosts, control_plane)
    workers = [h.name for h in hosts if h.name not in cp]
    by_name = {h.name: h for h in hosts}

    def host_line(name: str) -> str:
        h = by_name[name]
        parts = [name, f"ansible_host={_ini_value(h.hostname)}", f"ansible_port={h.port}", f"ansible_user={_ini_value(h.user)}"]
        if h.identity_file:
            parts.append(f"ansible_ssh_private_key_file={_ini_value(h.identity_file)}")
        return " ".join(parts)

    lines = [f"# Generated by `clusterctl inventory from-vagrant` from {source}.", "#"]
    if any(h.disables_host_key_checking for h in hosts):
        lines += [
            "# Vagrant's ssh-config turns host key checking off (StrictHostKeyChecking no,",
            "# UserKnownHostsFile /dev/null). This inventory does not: the first run records each",
            "# VM's key in the known_hosts file named below (accept-new), later runs verify it.",
            "# After `vagrant destroy`, delete that file: new VMs have new host keys.",
            "",
        ]
    lines.append("[control_plane]")
    lines += [host_line(n) for n in cp]
    lines += ["", "[workers]"]
    lines += [host_line(n) for n in workers]
    lines += ["", "[cluster:children]", "control_plane", "workers", ""]
    ssh_args = "-o StrictHostKeyChecking=accept-new"
    if known_hosts:
        ssh_args = f"-o UserKnownHostsFile={known_hosts} " + ssh_args
    lines += ["[all:vars]", f"ansible_ssh_common_args='{ssh_args}'", "ansible_become=true", ""]
    return "\n".join(lines)


def run_vagrant_ssh_config(vagrant_dir: str | None = None) -> str:
    """Run ``vagrant ssh-config`` (in ``vagrant_dir``) and return its output."""
    exe = shutil.which("vagrant")
    if exe is None:
        raise VagrantConfigError("vagrant is not installed here: run `vagrant ssh-config > ssh-config.txt` where it is, then pass --ssh-config ssh-config.txt")
    try:
        proc = subprocess.run([exe, "ssh-config"], cwd=vagrant_dir, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VagrantConfigError(f"`vagrant ssh-config` failed to run in {vagrant_dir or os.getcwd()}: {exc}") from exc
    if proc.returncode != 0:
        raise VagrantConfigError(f"`vagrant ssh-config` exited {proc.returncode} in {vagrant_dir or os.getcwd()}: {proc.stderr.strip()[:500]}")
    return proc.stdout


def inventory_from_vagrant(
    *,
    ssh_config_file: str | None = None,
    vagrant_dir: str | None = None,
    control_plane: list[str] | None = None,
    out: str | None = None,
    known_hosts: str | None = None,
) -> str:
    """Read the ssh-config (file, or run vagrant), render the inventory, write it to ``out`` if given."""
    if ssh_config_file:
        try:
            text = Path(ssh_config_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise VagrantConfigError(f"{ssh_config_file}: cannot read: {exc.strerror}") from exc
        source = ssh_config_file
    else:
        text = run_vagrant_ssh_config(vagrant_dir)
        source = "`vagrant ssh-config`"
    hosts = parse_ssh_config(text, source=source)
    if known_hosts is None and out:
        known_hosts = str(Path(out).resolve().parent / "known_hosts.vagrant")
    rendered = render_inventory(hosts, control_plane=control_plane, known_hosts=known_hosts, source=os.path.basename(source) if ssh_config_file else source)
    if out:
        Path(out).write_text(rendered, encoding="utf-8")
    return rendered
