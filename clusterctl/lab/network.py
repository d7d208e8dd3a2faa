"""The lab's wiring in the machine's root namespace: bridge, veths, network namespaces.

Changes go through ``ip -batch`` (one process for many commands) so 30 hosts cost a handful of
forks. Teardown never trusts a single source: it removes what ``lab.json`` recorded *and*
whatever still carries the slot's name prefix (leftovers of a crashed run).

The machine's ``net.ipv4.ip_forward`` is never touched and hosts get no default route: lab
traffic can only go between the bridge and the hosts of the same lab.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterable

from clusterctl.lab.errors import LabError
from clusterctl.lab.slots import SlotNames

NETNS_DIR = "/run/netns"


def ip_batch(ip: str, commands: Iterable[str], *, force: bool = False) -> subprocess.CompletedProcess:
    """Run ``ip -batch -`` over ``commands``; with ``force``, go on past failing lines."""
    script = "\n".join(commands) + "\n"
    argv = [ip, *(["-force"] if force else []), "-batch", "-"]
    result = subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
    if result.returncode != 0 and not force:
        raise LabError(f"ip -batch failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}")
    return result


def create_bridge(ip: str, names: SlotNames) -> None:
    prefix = names.subnet.split("/")[1]
    ip_batch(ip, [
        f"link add {names.bridge} type bridge",
        f"addr add {names.gateway}/{prefix} dev {names.bridge}",
        f"link set {names.bridge} up",
    ])


def wire_hosts(ip: str, names: SlotNames, indexes: Iterable[int]) -> None:
    """For each host: its network namespace and a veth from the bridge into it (named eth0 there)."""
    commands: list[str] = []
    for i in indexes:
        ns, veth = names.netns(i), names.veth(i)
        commands += [
            f"netns add {ns}",
            f"link add {veth} group {names.link_group} type veth peer name eth0 netns {ns}",
            f"link set {veth} master {names.bridge} up",
        ]
    ip_batch(ip, commands)


def set_link(ip: str, link: str, up: bool) -> None:
    ip_batch(ip, [f"link set {link} {'up' if up else 'down'}"])


def link_is_up(link: str) -> bool | None:
    """Administrative state of a root-namespace link; None if it does not exist."""
    try:
        with open(f"/sys/class/net/{link}/flags") as handle:
            return bool(int(handle.read().strip(), 16) & 0x1)
    except (OSError, ValueError):
        return None


def existing_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_pids(netns_names: Iterable[str]) -> dict[str, list[int]]:
    """Live (non-zombie) processes in each named network namespace, in one scan of /proc."""
    by_inode: dict[tuple[int, int], str] = {}
    result: dict[str, list[int]] = {}
    for name in netns_names:
        result[name] = []
        try:
            st = os.stat(os.path.join(NETNS_DIR, name))
        except OSError:
            continue
        by_inode[(st.st_dev, st.st_ino)] = name
    if not by_inode:
        return result
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue  # gone, or a zombie
        name = by_inode.get((st.st_dev, st.st_ino))
        if name is not None:
            result[name].append(int(entry))
    return result


def kill_netns_processes(netns_names: list[str], *, timeout: float = 5.0) -> None:
    """SIGKILL every process in the namespaces (a power cut) and wait until they are gone.

    A dying process leaves its namespaces before its last files are closed (the kernel's
    ``do_exit`` runs the deferred closes after ``exit_task_namespaces``), so "no process in the
    namespace" alone can still leave a listening socket open for a moment: every killed process is
    also waited for until it is a zombie or gone."""
    deadline = time.monotonic() + timeout
    killed: dict[int, bytes | None] = {}                      # pid -> its start time
    while True:
        pids = [pid for group in netns_pids(netns_names).values() for pid in group]
        killed = {pid: start for pid, start in killed.items() if not _exited(pid, start)}
        if not pids and not killed:
            return
        for pid in pids:
            killed.setdefault(pid, _stat(pid)[1])
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise LabError(f"processes {sorted(killed)[:10]} in lab namespaces survived SIGKILL for {timeout:.0f} s")
        time.sleep(0.01)


def _stat(pid: int) -> tuple[bytes, bytes | None]:
    """``(state, start time)`` of ``pid`` from /proc/PID/stat; ``(b"X", None)`` when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return b"X", None
    return fields[0], fields[19] if len(fields) > 19 else None


def _exited(pid: int, start: bytes | None) -> bool:
    """Whether the process ``pid`` that started at ``start`` has finished exiting (a zombie, or
    reaped; a new process that reused the pid does not count)."""
    state, now_start = _stat(pid)
    return state in (b"Z", b"X") or now_start != start


def teardown(ip: str, names: SlotNames, netns: Iterable[str], links: Iterable[str]) -> None:
    """Remove the processes, veths, namespaces and bridge of a slot (recorded + swept by prefix)."""
    all_netns = sorted(set(netns) | {n for n in existing_netns() if names.owns_netns(n)})
    all_links = set(links) | {l for l in os.listdir("/sys/class/net") if names.owns_link(l)}
    present_netns = [n for n in all_netns if os.path.exists(os.path.join(NETNS_DIR, n))]
    kill_netns_processes(present_netns)
    # Deleting the veth also deletes its peer inside the namespace, so sockets still lingering
    # in the dead namespace (TIME_WAIT) cannot block a later `up` that reuses the names. The
    # group removes them in one batch; names left over (a run older than the group) one by one.
    ip_batch(ip, [f"link del group {names.link_group}"], force=True)
    veths = sorted(l for l in all_links if l != names.bridge and os.path.exists(f"/sys/class/net/{l}"))
    commands = [f"link del {veth}" for veth in veths]
    commands += [f"netns del {n}" for n in present_netns]
    if os.path.exists(f"/sys/class/net/{names.bridge}"):
        commands.append(f"link del {names.bridge}")
    if commands:
        ip_batch(ip, commands, force=True)
    leftover = [n for n in present_netns if os.path.exists(os.path.join(NETNS_DIR, n))]
    leftover += [l for l in [*veths, names.bridge] if os.path.exists(f"/sys/class/net/{l}")]
    if leftover:
        raise LabError(f"could not remove lab {names.slot} leftovers: {', '.join(leftover)}")
