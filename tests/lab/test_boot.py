"""The pure parts of a host's boot: which cgroup hierarchies to mount again, and fstab text."""

from __future__ import annotations

from pathlib import Path

from clusterctl.lab.boot import (
    BootSpec, CgroupMount, HostLayout, cgroup_fstab, filesystem_fstab, fstab_escape, machine_cgroup_mounts,
)

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory,clone_children 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,xattr,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime,nsdelegate 0 0
cgroup /elsewhere/memory cgroup rw,memory 0 0
"""


def test_hierarchies_keep_only_what_names_them() -> None:
    assert machine_cgroup_mounts(HYBRID) == [
        CgroupMount("cgroup", "cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct"),
        CgroupMount("cgroup", "memory", "/sys/fs/cgroup/memory"),
        CgroupMount("cgroup", "none,name=systemd", "/sys/fs/cgroup/systemd"),
        CgroupMount("cgroup2", "", "/sys/fs/cgroup/unified"),
    ]


def test_pure_cgroup2_machine_mounts_the_unified_tree_at_the_top() -> None:
    mounts = machine_cgroup_mounts("cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n")
    spec = _spec(tuple(mounts))
    assert cgroup_fstab(spec) == "cgroup2 /sys/fs/cgroup cgroup2 defaults 0 0\n"


def test_v1_hierarchies_go_on_a_tmpfs_with_mountpoints_made() -> None:
    spec = _spec(tuple(machine_cgroup_mounts(HYBRID)))
    lines = cgroup_fstab(spec).splitlines()
    assert lines[0] == "lab-cgroup /sys/fs/cgroup tmpfs mode=755 0 0"
    assert "cgroup /sys/fs/cgroup/memory cgroup memory,X-mount.mkdir 0 0" in lines
    assert "cgroup2 /sys/fs/cgroup/unified cgroup2 X-mount.mkdir 0 0" in lines


def test_fstab_escapes_whitespace_and_backslash() -> None:
    assert fstab_escape("/tmp/my lab\tx\\y") == "/tmp/my\\040lab\\011x\\134y"
    fstab = filesystem_fstab(_spec((), state_dir=Path("/tmp/my lab/hosts/h1")))
    assert fstab.splitlines()[0] == "/tmp/my\\040lab/hosts/h1 /run/clusterctl-lab/stage none bind 0 0"
    # the tmpfs on /run comes after every mount whose source lies under the staging point
    targets = [line.split()[1] for line in fstab.splitlines()]
    assert targets.index("/run") > max(i for i, line in enumerate(fstab.splitlines()) if "/run/clusterctl-lab/stage/" in line)


def _spec(cgroups: tuple, state_dir: Path = Path("/lab/hosts/h1")) -> BootSpec:
    return BootSpec(hostname="h1", ip="10.200.9.11", prefixlen=24, layout=HostLayout(state_dir),
                    sshd="/usr/sbin/sshd", tini=None, cgroups=cgroups, cgroup_links=())
