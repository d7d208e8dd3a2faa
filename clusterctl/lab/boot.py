"""How one lab host boots: its disk layout on the machine and the script that runs as its PID 1.

A host is a process tree started by
``ip netns exec NS unshare --mount --uts --pid --fork --kill-child --propagation private sh -c BOOT``.
BOOT configures the host's eth0 (no default route; unreachable routes for the pod and service
CIDRs as insurance), sets the hostname, then builds the host's private view of the filesystem:

* copy-on-write overlays over /etc /var /usr /opt /home /srv (upper dirs in the host's state dir,
  so installing a package in one host is invisible to the others and to the machine);
* per-host /root and /tmp, tmpfs /run, a fresh /proc for the new PID namespace;
* the cgroup hierarchies of the machine mounted again under /sys/fs/cgroup (``ip netns exec``
  mounts a fresh sysfs without them), so a node runtime can run inside the host;
* a per-host directory of the real filesystem bound at /var/lib/clusterctl (overlayfs refuses an
  overlay upper dir, and container rootfs are overlays);

and finally execs a small init (``tini``, or a shell reaper loop) that runs ``sshd -D`` as a
child, so killing sshd does not power the host off.

All state paths are first bound to one staging mountpoint of the machine's real filesystem
(``/run/clusterctl-lab/stage``, hidden afterwards by the tmpfs on /run), because the lab dir
itself may lie under a folder the host is about to cover (/tmp, /root, /home).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

#: folders that get a copy-on-write overlay in every host
OVERLAID = ("etc", "var", "usr", "opt", "home", "srv")
#: pod and service CIDRs of the cluster: fail locally, never leave through a route
UNREACHABLE_CIDRS = ("10.244.0.0/16", "10.96.0.0/12")
STAGE = "/run/clusterctl-lab/stage"
DATA_MOUNT = "/var/lib/clusterctl"


@dataclass(frozen=True)
class HostLayout:
    """The host's state dir on the machine: overlay uppers, /root, /tmp, data dir, console log."""

    state_dir: Path

    def upper(self, folder: str) -> Path:
        return self.state_dir / "upper" / folder

    def work(self, folder: str) -> Path:
        return self.state_dir / "work" / folder

    @property
    def root_home(self) -> Path:
        return self.state_dir / "root"

    @property
    def tmp(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def data(self) -> Path:
        return self.state_dir / "data"

    @property
    def etc(self) -> Path:
        return self.upper("etc")

    @property
    def console_log(self) -> Path:
        return self.state_dir / "console.log"

    def create(self) -> None:
        for folder in OVERLAID:
            self.upper(folder).mkdir(parents=True, exist_ok=True)
            self.upper(folder).chmod(0o755)
            self.work(folder).mkdir(parents=True, exist_ok=True)
        (self.etc / "ssh").mkdir(exist_ok=True)
        (self.root_home / ".ssh").mkdir(parents=True, exist_ok=True)
        self.root_home.chmod(0o700)
        (self.root_home / ".ssh").chmod(0o700)
        self.tmp.mkdir(exist_ok=True)
        self.tmp.chmod(0o1777)
        self.data.mkdir(exist_ok=True)
        self.data.chmod(0o755)


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup hierarchy as the machine mounts it, to be mounted again inside a host."""

    fstype: str  # "cgroup" (v1) or "cgroup2"
    options: str  # e.g. "memory", "cpu,cpuacct", "none,name=systemd"; "" for cgroup2
    mountpoint: str


def machine_cgroup_mounts(mounts_text: str | None = None) -> list[CgroupMount]:
    """The cgroup hierarchies mounted under /sys/fs/cgroup in the machine's mount namespace."""
    if mounts_text is None:
        mounts_text = Path("/proc/self/mounts").read_text()
    controllers = _known_controllers()
    found: list[CgroupMount] = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = fields[1]
        if mountpoint != "/sys/fs/cgroup" and not mountpoint.startswith("/sys/fs/cgroup/"):
            continue
        if fields[2] == "cgroup2":
            options = ""
        else:
            # only what names the hierarchy: its controllers and name=; other flags don't matter
            kept = [o for o in fields[3].split(",") if o in controllers or o.startswith("name=")]
            if all(o.startswith("name=") for o in kept):
                kept.insert(0, "none")
            options = ",".join(kept)
        found.append(CgroupMount(fields[2], options, mountpoint))
    return found


def _known_controllers() -> set[str]:
    try:
        lines = Path("/proc/cgroups").read_text().splitlines()
    except OSError:
        return set()
    return {line.split()[0] for line in lines if line and not line.startswith("#")}


def machine_cgroup_links(root: str = "/sys/fs/cgroup") -> dict[str, str]:
    """Symlinks such as ``cpu,cpuacct -> cpu`` beside the hierarchies (name -> target)."""
    links: dict[str, str] = {}
    try:
        for entry in os.scandir(root):
            if entry.is_symlink():
                links[entry.name] = os.readlink(entry.path)
    except OSError:
        pass
    return links


def sshd_config(ip: str) -> str:
    return "\n".join([
        "# written by clusterctl lab",
        f"ListenAddress {ip}:22",
        "HostKey /etc/ssh/ssh_host_ed25519_key",
        "PidFile /run/sshd.pid",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "UseDNS no",
        # the default 10:30:100 drops parallel handshakes from a provisioner with many forks
        "MaxStartups 200:30:400",
        "MaxSessions 100",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp internal-sftp",
        "",
    ])


@dataclass(frozen=True)
class BootSpec:
    """Everything BOOT needs to know about one host."""

    hostname: str
    ip: str
    prefixlen: int
    layout: HostLayout
    sshd: str
    tini: str | None
    cgroups: tuple[CgroupMount, ...]
    cgroup_links: tuple[tuple[str, str], ...]


def boot_script(spec: BootSpec) -> str:
    q = shlex.quote
    stage = STAGE
    lines = [
        "set -e",
        "exec </dev/null",
        # network first: the host has eth0 (veth peer) and lo; replace makes a restart idempotent
        "ip -batch - <<'EOF'",
        "link set lo up",
        f"addr replace {spec.ip}/{spec.prefixlen} dev eth0",
        "link set eth0 up",
        *(f"route replace unreachable {cidr}" for cidr in UNREACHABLE_CIDRS),
        "EOF",
        f"hostname {q(spec.hostname)}",
        f"mount --bind {q(str(spec.layout.state_dir))} {stage}",
    ]
    for folder in OVERLAID:
        lines.append(
            f"mount -t overlay overlay -o lowerdir=/{folder},upperdir={stage}/upper/{folder},"
            f"workdir={stage}/work/{folder} /{folder}"
        )
    lines += [
        f"mkdir -p {DATA_MOUNT}",
        f"mount --bind {stage}/data {DATA_MOUNT}",
        f"mount --bind {stage}/root /root",
        f"mount --bind {stage}/tmp /tmp",
        "mount -t proc proc /proc",
    ]
    lines += _cgroup_lines(spec)
    lines += [
        "mount -t tmpfs -o mode=755,size=64m tmpfs /run",
        "mkdir -p /run/sshd",
        "chmod 0755 /run/sshd",
    ]
    sshd = f"{q(spec.sshd)} -D -e -f /etc/ssh/sshd_config"
    # the supervisor outlives sshd: killing sshd leaves the host up (a reachable-but-no-ssh host)
    supervisor = f"{sshd} & while :; do sleep 3600 & wait $! || true; done"
    if spec.tini:
        lines.append(f"exec {q(spec.tini)} -s -- /bin/sh -c {q(supervisor)}")
    else:
        lines.append(f"trap '' TERM INT HUP; {supervisor}")
    return "\n".join(lines) + "\n"


def _cgroup_lines(spec: BootSpec) -> list[str]:
    if not spec.cgroups:
        return []
    lines: list[str] = []
    whole = [m for m in spec.cgroups if m.mountpoint == "/sys/fs/cgroup"]
    if whole:
        m = whole[0]
        opts = f"-o {m.options} " if m.options else ""
        lines.append(f"mount -t {m.fstype} {opts}{m.fstype} /sys/fs/cgroup")
        return lines
    lines.append("mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup")
    for m in spec.cgroups:
        opts = f"-o {m.options} " if m.options else ""
        # a missing controller must not keep sshd from starting; say so on the console instead
        lines.append(
            f"mkdir -p {shlex.quote(m.mountpoint)} && mount -t {m.fstype} {opts}{m.fstype} {shlex.quote(m.mountpoint)} "
            f"|| echo 'clusterctl lab: could not mount {m.fstype} {m.options} at {m.mountpoint}' >&2"
        )
    for name, target in spec.cgroup_links:
        lines.append(f"ln -sfn {shlex.quote(target)} {shlex.quote('/sys/fs/cgroup/' + name)}")
    return lines
