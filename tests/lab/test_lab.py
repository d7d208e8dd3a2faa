"""The local lab, end to end on this machine: real namespaces, real sshd, the real ssh client.

Every check goes through what a user or a provisioner would use (ssh with strict host key
checking against the lab's known_hosts, the CLI) or through the machine's own view (ip, /proc).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from clusterctl.lab import HostBootFailed, Lab, LabError, PrerequisiteMissing, check_prerequisites
from clusterctl.lab.network import existing_netns, netns_pids
from clusterctl.lab.slots import SlotNames, read_claim

pytestmark = pytest.mark.lab

CLUSTERCTL = str(Path(sys.executable).with_name("clusterctl"))


def ssh(lab: Lab, name: str, command: str, *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    result = subprocess.run(lab.ssh_argv(name, command), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"ssh {name} {command!r} -> rc {result.returncode}: {result.stderr.strip()}")
    return result


def connect_outcome(ip: str, timeout: float = 10.0) -> str:
    """'open', 'refused' or 'timeout' for a TCP connect to ip:22."""
    try:
        with socket.create_connection((ip, 22), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except (TimeoutError, socket.timeout):
        return "timeout"
    except OSError as exc:
        return f"error: {exc}"


def machine_leftovers(lab: Lab, slot: int, pids: list[int]) -> list[str]:
    """Everything of slot ``slot`` still visible on the machine."""
    names = SlotNames(slot)
    found = [f"netns {n}" for n in existing_netns() if names.owns_netns(n)]
    found += [f"link {l}" for l in os.listdir("/sys/class/net") if names.owns_link(l)]
    found += [f"pid {p}" for p in pids if Path(f"/proc/{p}").exists() and _not_zombie(p)]
    mounts = Path("/proc/self/mounts").read_text()
    found += [f"mount {line}" for line in mounts.splitlines() if f"{names.netns(0)[:-1]}" in line or str(lab.dir) in line]
    return found


def _not_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def lab_pids(lab: Lab) -> list[int]:
    return [p for group in netns_pids([h.netns for h in lab.hosts]).values() for p in group]


# -- a lab of three, read-mostly ----------------------------------------------------------


def test_every_host_answers_ssh_with_its_recorded_key_and_own_hostname(lab3: Lab) -> None:
    assert [h.name for h in lab3.hosts] == ["h1", "h2", "h3"]
    for host in lab3.hosts:
        assert ssh(lab3, host.name, "hostname").stdout.strip() == host.name
    # the known_hosts line is the key the host really serves: ssh-keyscan sees the same
    for host in lab3.hosts:
        # ssh-keyscan gives up after 5 s by default (-T): a loaded machine can take longer to answer
        scanned = subprocess.run(["ssh-keyscan", "-T", "30", "-t", "ed25519", host.ip], capture_output=True, text=True, timeout=60)
        assert scanned.stdout.split()[1:3] in [line.split()[1:3] for line in lab3.known_hosts_path.read_text().splitlines()
                                              if line.startswith(host.ip + " ")]


def test_inventory_lists_every_host_in_group_nodes_with_key_and_known_hosts(lab3: Lab) -> None:
    text = lab3.inventory_path.read_text()
    section = text.split("[nodes]\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert section == [
        f"{h.name} ansible_host={h.ip} ansible_user=root ansible_ssh_private_key_file={lab3.key_path}" for h in lab3.hosts
    ]
    assert f"-o UserKnownHostsFile={lab3.known_hosts_path}" in text
    assert f"clusterctl_known_hosts={lab3.known_hosts_path}" in text
    assert [line.split()[0] for line in lab3.known_hosts_path.read_text().splitlines()] == [h.ip for h in lab3.hosts]


def test_a_wrong_host_key_is_refused(lab3: Lab, tmp_path: Path) -> None:
    """Strict checking really checks: h2's key recorded under h1's address fails the login."""
    keys = dict(line.split(" ", 1) for line in lab3.known_hosts_path.read_text().splitlines())
    h1, h2 = lab3.hosts[0], lab3.hosts[1]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{h1.ip} {keys[h2.ip]}\n")
    argv = [a if not a.startswith("UserKnownHostsFile=") else f"UserKnownHostsFile={wrong}" for a in lab3.ssh_argv("h1", "true")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert result.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr or "host key" in result.stderr.lower()


def test_disks_are_private_to_each_host(lab3: Lab) -> None:
    marker = f"/etc/clusterctl-lab-test-{uuid.uuid4().hex}"
    try:
        name = Path(marker).name
        ssh(lab3, "h1", f"echo h1 > {marker} && touch /root/{name} /tmp/{name} /dev/shm/{name} /srv/{name}")
        for folder in ("/root", "/tmp", "/dev/shm", "/srv"):
            assert ssh(lab3, "h2", f"test -e {folder}/{name}", check=False).returncode == 1, folder
            assert not Path(f"{folder}/{name}").exists(), folder
        assert ssh(lab3, "h1", f"cat {marker}").stdout == "h1\n"
        assert ssh(lab3, "h2", f"test -e {marker}", check=False).returncode == 1
        assert ssh(lab3, "h2", f"test -e /root/{Path(marker).name}", check=False).returncode == 1
        assert not Path(marker).exists()
        assert not Path(f"/root/{Path(marker).name}").exists()
        # copy-on-write: the file landed in h1's upper dir on the machine
        assert (lab3.hosts[0].state_dir / "upper" / marker.lstrip("/")).read_text() == "h1\n"
    finally:
        name = Path(marker).name
        ssh(lab3, "h1", f"rm -f {marker} /root/{name} /tmp/{name} /dev/shm/{name} /srv/{name}", check=False)


def test_host_can_run_a_node_runtime_cgroups_data_dir_and_init(lab3: Lab) -> None:
    machine_hierarchies = sorted(
        line.split()[1].rsplit("/", 1)[1] for line in Path("/proc/self/mounts").read_text().splitlines()
        if line.split()[2] in ("cgroup", "cgroup2") and line.split()[1].startswith("/sys/fs/cgroup/")
    )
    assert machine_hierarchies, "this machine mounts no cgroup hierarchy under /sys/fs/cgroup"
    inside = ssh(lab3, "h2", "ls /sys/fs/cgroup").stdout.split()
    assert sorted(inside) == machine_hierarchies
    if "memory" in machine_hierarchies:
        # usable, not just visible: a node runtime makes a cgroup, limits it, moves a process in
        group = f"/sys/fs/cgroup/memory/clusterctl-lab-test-{uuid.uuid4().hex[:8]}"
        script = (
            f"set -e; mkdir {group}; echo 67108864 > {group}/memory.limit_in_bytes; "
            f"sh -c 'echo $$ > {group}/cgroup.procs; cat {group}/memory.limit_in_bytes'; rmdir {group}"
        )
        assert ssh(lab3, "h2", script).stdout.strip() == "67108864"
    # /var/lib/clusterctl is the machine's real filesystem, so an overlay can be mounted on it
    fstype = ssh(lab3, "h2", "stat -f -c %T /var/lib/clusterctl").stdout.strip()
    assert fstype != "overlayfs" and ssh(lab3, "h2", "stat -f -c %T /etc").stdout.strip() == "overlayfs"
    tag = uuid.uuid4().hex[:8]
    script = (
        f"set -e; d=/var/lib/clusterctl/ovl-{tag}; mkdir -p $d/lower $d/upper $d/work $d/merged; "
        f"echo hi > $d/lower/f; mount -t overlay overlay -o lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work $d/merged; "
        f"cat $d/merged/f; umount $d/merged; rm -rf $d"
    )
    assert ssh(lab3, "h2", script).stdout == "hi\n"
    # the data dir is the host's data_dir on the machine
    ssh(lab3, "h2", f"echo {tag} > /var/lib/clusterctl/{tag}")
    assert (lab3.hosts[1].data_dir / tag).read_text() == f"{tag}\n"
    (lab3.hosts[1].data_dir / tag).unlink()
    # PID 1 is a small init, not sshd
    assert ssh(lab3, "h2", "cat /proc/1/comm").stdout.strip() in ("tini", "sh")


def test_hosts_have_no_way_out(lab3: Lab) -> None:
    routes = ssh(lab3, "h3", "ip -4 route show table all").stdout
    assert "default" not in routes
    assert "unreachable 10.244.0.0/16" in routes and "unreachable 10.96.0.0/12" in routes
    # asking the kernel where a packet would go sends nothing
    assert ssh(lab3, "h3", "ip route get 1.1.1.1", check=False).returncode != 0
    assert ssh(lab3, "h3", "ip route get 10.244.1.5", check=False).returncode != 0


def test_a_lab_dir_with_spaces_works(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "my lab dir", owner_pid=os.getpid())
    lab.up(1)
    try:
        assert ssh(lab, "h1", "hostname").stdout.strip() == "h1"
        assert ssh(lab, "h1", "stat -f -c %T /etc").stdout.strip() == "overlayfs"
    finally:
        lab.down()


def test_up_and_down_leave_the_machines_forwarding_alone(tmp_path: Path) -> None:
    before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    lab = Lab(tmp_path / "lab")
    lab.up(1)
    during = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    lab.down()
    assert before == during == Path("/proc/sys/net/ipv4/ip_forward").read_text()


def test_hosts_reach_each_other_by_name(lab3: Lab) -> None:
    h2 = lab3.hosts[1]
    assert ssh(lab3, "h1", "getent hosts h2").stdout.split()[0] == h2.ip
    assert ssh(lab3, "h1", f"(exec 3<>/dev/tcp/{h2.ip}/22) && echo open").stdout.strip() == "open"


# -- faults --------------------------------------------------------------------------------


def test_stop_kills_every_process_and_start_keeps_disk_and_host_key(lab_factory) -> None:
    lab = lab_factory(2)
    ssh(lab, "h1", "echo kept > /etc/kept && echo data > /var/lib/clusterctl/kept && { sleep 601 </dev/null >/dev/null 2>&1 & }")
    key_before = (lab.hosts[0].state_dir / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text()
    h1 = lab.hosts[0]
    assert netns_pids([h1.netns])[h1.netns]

    lab.stop("h1")
    assert netns_pids([h1.netns])[h1.netns] == []
    assert connect_outcome(h1.ip) == "refused"
    assert {r["name"]: r["power"] for r in lab.status()} == {"h1": "stopped", "h2": "running"}
    assert ssh(lab, "h2", "hostname").stdout.strip() == "h2"

    lab.start("h1")
    assert ssh(lab, "h1", "cat /etc/kept /var/lib/clusterctl/kept; pgrep -f 'sleep 60[1]' || echo no-sleep").stdout.split() == [
        "kept", "data", "no-sleep"]
    assert (lab.hosts[0].state_dir / "upper/etc/ssh/ssh_host_ed25519_key.pub").read_text() == key_before
    assert ssh(lab, "h1", "hostname").stdout.strip() == "h1"


def test_killing_sshd_leaves_the_host_running(lab_factory) -> None:
    lab = lab_factory(1)
    session = subprocess.Popen(lab.ssh_argv("h1", "echo in; sleep 30"), stdout=subprocess.PIPE, text=True)
    assert session.stdout.readline() == "in\n"
    lab.kill_sshd("h1")
    assert session.wait(timeout=30) == 255  # the open session died with it
    assert connect_outcome(lab.hosts[0].ip) == "refused"
    assert lab.status()[0]["power"] == "running" and lab.status()[0]["ssh"] is False
    assert subprocess.run(lab.exec_argv("h1", "hostname"), capture_output=True, text=True).stdout.strip() == "h1"
    lab.stop("h1")
    lab.start("h1")
    assert ssh(lab, "h1", "hostname").stdout.strip() == "h1"


def test_without_tini_a_shell_is_init_and_reaps(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab", owner_pid=os.getpid(), tools=replace(check_prerequisites(), tini=None))
    lab.up(1)
    try:
        assert ssh(lab, "h1", "cat /proc/1/comm").stdout.strip() == "sh"
        # an orphan whose parent exits becomes PID 1's child and must not stay a zombie: it is
        # gone from the process table once it has exited (a zombie keeps its /proc entry)
        orphan = ssh(lab, "h1", "sh -c 'sleep 0.2 >/dev/null 2>&1 & echo $!'").stdout.strip()
        assert orphan.isdigit(), orphan
        gone = ssh(lab, "h1", f"i=0; while [ -e /proc/{orphan} ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done; "
                              f"test -e /proc/{orphan} && cat /proc/{orphan}/stat || echo reaped", timeout=60).stdout.strip()
        assert gone == "reaped", f"the orphan is still in the process table after 30 s: {gone}"
        subprocess.run(lab.exec_argv("h1", "pkill", "-x", "sshd"), check=True, timeout=30)
        deadline = time.monotonic() + 30  # SIGTERM: sshd exits when it is next scheduled
        while lab.status()[0]["ssh"] is not False:
            assert time.monotonic() < deadline, lab.status()
            time.sleep(0.05)
        assert lab.status()[0]["power"] == "running"
        lab.stop("h1")
        lab.start("h1")
        assert ssh(lab, "h1", "hostname").stdout.strip() == "h1"
    finally:
        lab.down()


def test_cut_drops_packets_and_heal_restores(lab_factory) -> None:
    lab = lab_factory(2)
    h1 = lab.hosts[0]
    lab.cut("h1")
    assert connect_outcome(h1.ip, timeout=0.5) == "timeout"
    assert lab.status()[0]["link"] == "cut"
    # from a neighbour too: no answer at all (not even a refusal) within a second
    probe = f"timeout 1 bash -c '(exec 3<>/dev/tcp/{h1.ip}/22)' 2>/dev/null; echo $?"
    assert ssh(lab, "h2", probe).stdout.strip() == "124"  # timed out: neither open nor refused
    assert ssh(lab, "h2", "hostname").stdout.strip() == "h2"
    lab.heal("h1")
    assert ssh(lab, "h1", "hostname").stdout.strip() == "h1"
    # and the neighbour that probed during the cut reaches it at once
    # (a stale neighbour entry would fail it with "No route to host", not slow it down: 10 s is
    # for a loaded machine starting bash)
    assert ssh(lab, "h2", f"timeout 10 bash -c '(exec 3<>/dev/tcp/{h1.ip}/22)' && echo open").stdout.strip() == "open"
    assert lab.status()[0]["link"] == "up"


# -- lifecycle -----------------------------------------------------------------------------


def test_down_leaves_nothing_behind(lab_factory) -> None:
    lab = lab_factory(3)
    slot = read_json_slot(lab)
    pids = lab_pids(lab)
    assert len(pids) >= 3 * 3  # init, supervisor, sshd per host at least
    assert machine_leftovers(lab, slot, pids) != []
    lab.down()
    assert machine_leftovers(lab, slot, pids) == []
    assert read_claim(slot) is None or read_claim(slot)["dir"] != str(lab.dir)
    assert not (lab.dir / "hosts").exists() and not lab.inventory_path.exists()
    lab.down()  # again: nothing to do, no error


def read_json_slot(lab: Lab) -> int:
    import json

    return json.loads(lab.state_path.read_text())["slot"]


def test_up_after_a_crash_cleans_leftovers_and_starts_from_clean_disks(lab_factory, tmp_path: Path) -> None:
    lab = lab_factory(2)
    ssh(lab, "h1", "touch /etc/from-the-old-run")
    old_slot, old_pids = read_json_slot(lab), lab_pids(lab)
    # a crash: the controlling process is gone (a new Lab object) and h2 died mid-way
    lab.stop("h2")
    again = Lab(lab.dir, owner_pid=os.getpid())
    hosts = again.up(3)
    assert [h.name for h in hosts] == ["h1", "h2", "h3"]
    assert all(not Path(f"/proc/{p}").exists() or not _not_zombie(p) for p in old_pids)
    assert ssh(again, "h1", "test -e /etc/from-the-old-run", check=False).returncode == 1
    new_slot = read_json_slot(again)
    if new_slot != old_slot:
        assert machine_leftovers(again, old_slot, old_pids) == []


def test_up_after_the_cli_was_killed_mid_boot(tmp_path: Path) -> None:
    lab_dir = tmp_path / "crashed"
    cli = subprocess.Popen([CLUSTERCTL, "lab", "up", "12", "--dir", str(lab_dir)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    # kill it once some hosts are booting: namespaces, veths, processes and disks all exist
    while time.monotonic() < deadline:
        if (lab_dir / "lab.json").exists() and (lab_dir / "hosts").exists() and lab_pids(Lab(lab_dir)):
            break
        time.sleep(0.002)
    cli.kill()
    cli.wait()
    crashed = Lab(lab_dir)
    old_slot = read_json_slot(crashed)
    old_pids = lab_pids(crashed)
    lab = Lab(lab_dir, owner_pid=os.getpid())
    try:
        assert [h.name for h in lab.up(2)] == ["h1", "h2"]
        assert all(not Path(f"/proc/{p}").exists() or not _not_zombie(p) for p in old_pids)
        names = SlotNames(old_slot)
        assert {n for n in existing_netns() if names.owns_netns(n)} <= {h.netns for h in lab.hosts}
        assert {l for l in os.listdir("/sys/class/net") if names.owns_link(l)} <= (
            {h.veth for h in lab.hosts} | {SlotNames(read_json_slot(lab)).bridge})
        assert ssh(lab, "h2", "hostname").stdout.strip() == "h2"
    finally:
        lab.down()


def test_a_host_that_never_serves_ssh_fails_up_and_leaves_nothing(tmp_path: Path) -> None:
    broken = replace(check_prerequisites(), sshd="/bin/false")
    # the boot timeout is the window in which this thread must see the hosts' processes (polled
    # every 10 ms): 3 s, not 0.5 s, so a loaded machine that delays this thread still sees them
    lab = Lab(tmp_path / "broken", owner_pid=os.getpid(), tools=broken, boot_timeout=3.0)
    failures: list[BaseException] = []

    def up() -> None:
        try:
            lab.up(2)
        except BaseException as exc:  # noqa: BLE001 - inspected below
            failures.append(exc)

    thread = threading.Thread(target=up)
    thread.start()
    slot = pids = None
    while thread.is_alive() and not pids:
        try:
            slot, pids = read_json_slot(lab), lab_pids(lab)
        except (FileNotFoundError, ValueError):
            pass  # not written yet, or already removed
        time.sleep(0.01)
    thread.join()
    assert len(failures) == 1 and isinstance(failures[0], HostBootFailed)
    assert "not listening on port 22" in str(failures[0]) and "h1" in str(failures[0])
    assert slot is not None and pids
    assert lab.hosts == [] and not lab.inventory_path.exists()
    if (read_claim(slot) or {}).get("dir") is None:  # nobody reused the slot meanwhile
        assert machine_leftovers(lab, slot, pids) == []
    assert all(not Path(f"/proc/{p}").exists() or not _not_zombie(p) for p in pids)


def test_an_orphaned_lab_is_swept_by_the_next_up(lab_factory, tmp_path: Path) -> None:
    """A lab whose owning process died (a killed test session) is cleaned by any later up."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = Lab(tmp_path / "orphan", owner_pid=dead.pid)
    orphan.up(1)
    slot, pids = read_json_slot(orphan), lab_pids(orphan)
    newer = lab_factory(1)
    assert all(not Path(f"/proc/{p}").exists() or not _not_zombie(p) for p in pids)
    assert (read_claim(slot) or {}).get("dir") != str(orphan.dir)
    leftovers = machine_leftovers(orphan, slot, [])
    if read_json_slot(newer) == slot:  # the swept slot was reused at once: only newer's names
        assert {n for n in existing_netns() if SlotNames(slot).owns_netns(n)} == {h.netns for h in newer.hosts}
    else:
        assert leftovers == []
    with pytest.raises(LabError, match="no longer owns its slot"):
        orphan.stop("h1")
    # the orphan's own down must not touch a slot that may belong to someone else now
    orphan.down()


def test_two_labs_at_once_do_not_collide(lab_factory) -> None:
    made: list[Lab] = []
    errors: list[BaseException] = []

    def make() -> None:
        try:
            made.append(lab_factory(2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=make) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    a, b = made
    assert read_json_slot(a) != read_json_slot(b)
    assert {h.ip for h in a.hosts}.isdisjoint({h.ip for h in b.hosts})
    assert {h.netns for h in a.hosts}.isdisjoint({h.netns for h in b.hosts})
    for lab in (a, b):
        for host in lab.hosts:
            assert ssh(lab, host.name, "hostname").stdout.strip() == host.name
    # labs are separate networks: a's host has no route to b's
    assert ssh(a, "h1", f"ip route get {b.hosts[0].ip}", check=False).returncode != 0
    a.down()
    assert ssh(b, "h1", "hostname").stdout.strip() == "h1"


# -- prerequisites and the CLI --------------------------------------------------------------


def test_prerequisites_name_what_to_do(tmp_path: Path) -> None:
    tools = check_prerequisites()
    assert tools.sshd.startswith("/") and tools.ip.startswith("/")
    with pytest.raises(PrerequisiteMissing, match="needs root.*run it as root"):
        check_prerequisites(euid=1000)
    empty = tmp_path / "bin"
    empty.mkdir()
    with pytest.raises(PrerequisiteMissing, match=r"apt-get install iproute2 openssh-server util-linux"):
        check_prerequisites(euid=0, path=str(empty))


def test_cli_as_non_root_says_run_as_root(tmp_path: Path) -> None:
    result = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", CLUSTERCTL, "lab", "up", "1",
         "--dir", str(tmp_path / "lab")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "run it as root" in result.stderr


def test_cli_without_tools_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    result = subprocess.run(
        [CLUSTERCTL, "lab", "up", "1", "--dir", str(tmp_path / "lab")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": str(tmp_path / "bin")},
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "apt-get install" in result.stderr


def test_cli_up_then_ssh_then_down(tmp_path: Path) -> None:
    lab_dir = tmp_path / "cli-lab"
    up = subprocess.run([CLUSTERCTL, "lab", "up", "3", "--dir", str(lab_dir)], capture_output=True, text=True, timeout=120)
    lab = Lab(lab_dir)
    try:
        assert up.returncode == 0, up.stderr
        assert str(lab.inventory_path) in up.stdout
        assert all(h.ip in up.stdout for h in lab.hosts)
        for host in lab.hosts:
            result = subprocess.run(
                ["ssh", "-i", str(lab.key_path), "-o", "StrictHostKeyChecking=yes",
                 "-o", f"UserKnownHostsFile={lab.known_hosts_path}", "-o", "BatchMode=yes",
                 f"root@{host.ip}", "hostname"],
                capture_output=True, text=True, timeout=20,
            )
            assert result.stdout.strip() == host.name, result.stderr
        via_cli = subprocess.run([CLUSTERCTL, "lab", "ssh", "h3", "--dir", str(lab_dir), "hostname"],
                                 capture_output=True, text=True, timeout=30)
        assert via_cli.stdout.strip() == "h3", via_cli.stderr
        status = subprocess.run([CLUSTERCTL, "lab", "status", "--dir", str(lab_dir)], capture_output=True, text=True)
        assert status.returncode == 0 and status.stdout.count("running") == 3
        for verb in ("stop", "start", "cut", "heal"):
            r = subprocess.run([CLUSTERCTL, "lab", verb, "h2", "--dir", str(lab_dir)], capture_output=True, text=True)
            assert r.returncode == 0, (verb, r.stderr)
        bad = subprocess.run([CLUSTERCTL, "lab", "stop", "h9", "--dir", str(lab_dir)], capture_output=True, text=True)
        assert bad.returncode != 0 and "no host 'h9'" in bad.stderr
    finally:
        down = subprocess.run([CLUSTERCTL, "lab", "down", "--dir", str(lab_dir)], capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert not any(n.startswith(lab.hosts[0].netns.split("-")[0] + "-") for n in existing_netns()) if lab.hosts else True


def test_hosts_see_this_product_and_its_python(lab3):
    """A checkout or virtualenv under /tmp or /root (CI clones, pyenv) is shown read-only inside
    every host at the same path, so hosts can run this very clusterctl."""
    import clusterctl

    host = lab3.hosts[0]
    package_dir = Path(clusterctl.__file__).resolve().parent
    probe = f"import sys; sys.path.insert(0, {str(package_dir.parent)!r}); import clusterctl; print(clusterctl.__file__)"
    out = subprocess.run(lab3.exec_argv(host.name, sys.executable, "-c", probe), capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith(str(package_dir))
    if any(str(package_dir).startswith(h + "/") for h in ("/tmp", "/root")):
        # shown read-only: a host cannot change the machine's checkout
        marker = package_dir / "lab-was-here"
        touch = subprocess.run(lab3.exec_argv(host.name, "touch", str(marker)), capture_output=True, text=True, timeout=30)
        assert touch.returncode != 0 and not marker.exists()
