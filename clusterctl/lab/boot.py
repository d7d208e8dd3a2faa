"""How one lab host boots: its disk layout on the machine and the script that runs as its PID 1.

A host is a process tree started by ``ip netns exec NS unshare --mount --uts --pid --fork
--kill-child --propagation slave --mount-proc sh -c BOOT``. Propagation is ``slave`` rather than
``private``: the host's mounts still stay inside it, but an unmount elsewhere on the machine
reaches the host too, so a host never pins other people's mounts (overlays, netns files) alive.
BOOT configures the host's eth0 (no default route; unreachable routes for the pod and service
CIDRs as insurance), sets the hostname, then builds the host's private view of the filesystem:

* copy-on-write overlays over /etc /var /usr /opt /home /srv (upper dirs in the host's state dir,
  so installing a package in one host is invisible to the others and to the machine);
* per-host /root and /tmp, tmpfs /run and /dev/shm (and /proc for the new PID namespace);
* the cgroup hierarchies of the machine mounted again under /sys/fs/cgroup (``ip netns exec``
  mounts a fresh sysfs without them), so a node runtime can run inside the host;
* a per-host directory of the real filesystem bound at /var/lib/clusterctl (overlayfs refuses an
  overlay upper dir, and container rootfs are overlays);

all of it from two fstabs with ``mount -a -T`` (one exec each), and finally execs a small init
(``tini``, or a shell reaper loop) that runs ``sshd -D`` as a child, so killing sshd does not
power the host off.

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
#: machine folders a host does not see, because its own /tmp and /root cover them
HIDDEN = ("/tmp", "/root")
DATA_MOUNT = "/var/lib/clusterctl"
SSHD_PID_FILE = "/run/clusterctl-lab-sshd.pid"


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

    @property
    def boot_dir(self) -> Path:
        """The fstabs the host mounts at boot."""
        return self.state_dir / "boot"

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
        # sshd writes its pid file once its listening sockets are bound: the lab's readiness
        # signal. A name of our own, so the machine's /run (visible early in boot) never matches
        f"PidFile {SSHD_PID_FILE}",
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
    #: machine paths under HIDDEN shown read-only at the same path inside the host
    shared: tuple[str, ...] = ()


def fstab_escape(path: str) -> str:
    """Escape a path for an fstab field (space, tab, newline and backslash as octal)."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in path)


def filesystem_fstab(spec: BootSpec) -> str:
    """The host's own filesystem view, mounted in order by one ``mount -a -T`` (one exec, not
    a dozen: boot time of many hosts is dominated by forks). Sources carry distinct names
    (``lab-*``) because ``mount -a`` skips an entry whose source and target look mounted
    already, as the machine's own ``tmpfs /dev/shm`` would."""
    stage = STAGE
    lines = [f"{fstab_escape(str(spec.layout.state_dir))} {stage} none bind 0 0"]
    for folder in OVERLAID:
        lines.append(
            f"lab-{folder} /{folder} overlay lowerdir=/{folder},upperdir={stage}/upper/{folder},"
            f"workdir={stage}/work/{folder} 0 0"
        )
    # shared paths are parked under the stage before /root and /tmp cover them, then put back
    for i, path in enumerate(spec.shared):
        lines.append(f"{fstab_escape(path)} {stage}/share/{i} none bind,ro,X-mount.mkdir 0 0")
    lines += [
        f"{stage}/data {DATA_MOUNT} none bind,X-mount.mkdir 0 0",
        f"{stage}/root /root none bind 0 0",
        f"{stage}/tmp /tmp none bind 0 0",
        *(f"{stage}/share/{i} {fstab_escape(path)} none bind,ro,X-mount.mkdir 0 0"
          for i, path in enumerate(spec.shared)),
        # the machine's /dev is shared (pty allocation needs its devpts), but not its shared memory
        "lab-shm /dev/shm tmpfs mode=1777,size=64m,nosuid,nodev 0 0",
        # last: the tmpfs on /run hides the staging mountpoint (the mounts above keep their paths)
        "lab-run /run tmpfs mode=755,size=64m 0 0",
        "lab-run-sshd /run/sshd tmpfs mode=755,size=1m,X-mount.mkdir 0 0",
    ]
    return "\n".join(lines) + "\n"


def cgroup_fstab(spec: BootSpec) -> str:
    """The machine's cgroup hierarchies again under the fresh sysfs of ``ip netns exec``."""
    lines: list[str] = []
    whole = [m for m in spec.cgroups if m.mountpoint == "/sys/fs/cgroup"]
    if whole:
        m = whole[0]
        return f"{m.fstype} /sys/fs/cgroup {m.fstype} {m.options or 'defaults'} 0 0\n"
    if spec.cgroups:
        lines.append("lab-cgroup /sys/fs/cgroup tmpfs mode=755 0 0")
    for m in spec.cgroups:
        options = ",".join(filter(None, [m.options, "X-mount.mkdir"]))
        lines.append(f"{m.fstype} {fstab_escape(m.mountpoint)} {m.fstype} {options} 0 0")
    return "\n".join(lines) + ("\n" if lines else "")


def boot_script(spec: BootSpec) -> str:
    """PID 1's script before it execs the init. Expects the fstabs written by ``write_boot_files``."""
    q = shlex.quote
    boot_dir = spec.layout.boot_dir
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
        f"echo {q(spec.hostname)} > /proc/sys/kernel/hostname",
    ]
    if spec.cgroups:
        # a missing controller must not keep sshd from starting; say so on the console instead
        lines.append(
            f"mount -a -T {q(str(boot_dir / 'fstab.cgroup'))} "
            "|| echo 'clusterctl lab: some cgroup hierarchies could not be mounted' >&2"
        )
        lines += [f"ln -sfn {q(target)} {q('/sys/fs/cgroup/' + name)}" for name, target in spec.cgroup_links]
    lines.append(f"mount -a -T {q(str(boot_dir / 'fstab'))}")
    sshd = f"{q(spec.sshd)} -D -e -f /etc/ssh/sshd_config"
    # the supervisor outlives sshd: killing sshd leaves the host up (a reachable-but-no-ssh host)
    supervisor = f"{sshd} & while :; do sleep 3600 & wait $! || true; done"
    if spec.tini:
        lines.append(f"exec {q(spec.tini)} -s -- /bin/sh -c {q(supervisor)}")
    else:
        lines.append(f"trap '' TERM INT HUP; {supervisor}")
    return "\n".join(lines) + "\n"


def write_boot_files(spec: BootSpec) -> None:
    spec.layout.boot_dir.mkdir(exist_ok=True)
    (spec.layout.boot_dir / "fstab").write_text(filesystem_fstab(spec))
    (spec.layout.boot_dir / "fstab.cgroup").write_text(cgroup_fstab(spec))


def product_paths() -> tuple[str, ...]:
    """Where this clusterctl and its Python live, when a host would not see them otherwise.

    Lab hosts run the product too (node agents, the network's standalone driver): a checkout or
    virtualenv under /tmp or /root (CI clones, pyenv) is shown to every host read-only, at the
    same path. Everything else of the machine is visible already (overlays or not covered).
    """
    import sys

    import clusterctl

    candidates = {
        Path(clusterctl.__file__).resolve().parent.parent,
        Path(sys.prefix).resolve(),
        Path(sys.base_prefix).resolve(),
        Path(sys.executable).resolve().parent.parent,
    }
    hidden = [p for p in {str(c) for c in candidates}
              if any(p == h or p.startswith(h + "/") for h in HIDDEN) and p not in HIDDEN]
    # a path inside another shared one needs no mount of its own
    return tuple(sorted(p for p in hidden if not any(p != q and p.startswith(q + "/") for q in hidden)))
