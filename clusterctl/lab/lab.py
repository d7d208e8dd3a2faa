"""``Lab``: N throwaway SSH hosts on this machine, made, broken and removed on request.

A lab lives in a directory (``DIR``) that holds everything about it: ``lab.json`` (its slot,
names and hosts, so ``down`` can remove it even from another process), ``inventory.ini``,
``known_hosts``, the client key ``id_ed25519`` and ``hosts/hN/`` (each host's disk: overlay
upper dirs, /root, /tmp, the data dir bound at /var/lib/clusterctl, and the console log).

Lifecycle: ``up(n)`` first removes whatever an earlier run left (clean disks, no stale
namespaces), claims a machine-wide slot (see ``slots``), wires the hosts (see ``network``),
boots them in parallel (see ``boot``) and waits until every sshd accepts TCP connections.
``stop``/``start`` power a host off (SIGKILL of all its processes; disk and host key stay) and
on; ``cut``/``heal`` set its veth down/up. ``down`` removes processes, veths, namespaces and
the bridge, recorded or found by name prefix.

The API is synchronous and subprocess-based: it is used from pytest fixtures, from the CLI and
from async code alike (call it in a thread there).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from clusterctl.lab import network
from clusterctl.lab.boot import (
    SSHD_PID_FILE, BootSpec, HostLayout, boot_script, machine_cgroup_links, machine_cgroup_mounts, product_paths, sshd_config,
    write_boot_files,
)
from clusterctl.lab.errors import HostBootFailed, HostNotFound, LabError
from clusterctl.lab.inventory import inventory_text, known_hosts_text, ssh_option_path, write_atomically
from clusterctl.lab.keys import KeyPair, ensure_client_key
from clusterctl.lab.prerequisites import LabTools, check_prerequisites
from clusterctl.lab.slots import (
    MAX_HOSTS, RUN_DIR, MachineNetwork, SlotNames, allocate_slot, claim_for_teardown, read_claim, release_claim, slot_lock,
)

STATE_FILE = "lab.json"
STATE_VERSION = 1
#: how long a booting host may take until its sshd accepts connections
DEFAULT_BOOT_TIMEOUT = 20.0
BOOT_TIMEOUT_PER_HOST = 0.2


@dataclass(frozen=True)
class LabHost:
    """One lab host: ``name`` (h1..hN, also its hostname), ``ip``, its network namespace and veth."""

    name: str
    ip: str
    netns: str
    veth: str
    state_dir: Path

    @property
    def data_dir(self) -> Path:
        """The machine-side folder bound at /var/lib/clusterctl inside the host."""
        return self.state_dir / "data"

    @property
    def console_log(self) -> Path:
        return self.state_dir / "console.log"

    def to_json(self) -> dict:
        data = asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict) -> LabHost:
        return cls(data["name"], data["ip"], data["netns"], data["veth"], Path(data["state_dir"]))


class Lab:
    """A lab rooted at ``dir``. Cheap to construct; reads ``dir/lab.json`` when asked.

    ``owner_pid``: when set (test fixtures pass their own pid), a later lab may reclaim this
    lab's slot once that process is dead, even if ``dir`` still exists. ``tools``: the programs
    to use (default: found by ``check_prerequisites``; a test passes ``tini=None`` to boot hosts
    with the shell init). Operations that change the lab hold ``DIR/.lock``, so two processes
    acting on one dir take turns.
    """

    def __init__(
        self, dir: str | Path, *, owner_pid: int | None = None, boot_timeout: float = DEFAULT_BOOT_TIMEOUT,
        tools: LabTools | None = None,
    ):
        self.dir = Path(dir).absolute()
        self.owner_pid = owner_pid
        self.boot_timeout = boot_timeout
        self._children: dict[str, subprocess.Popen] = {}
        self._tools = tools

    # -- files handed to provisioners ------------------------------------------------------

    @property
    def inventory_path(self) -> Path:
        return self.dir / "inventory.ini"

    @property
    def known_hosts_path(self) -> Path:
        return self.dir / "known_hosts"

    @property
    def key_path(self) -> Path:
        return self.dir / "id_ed25519"

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    # -- state -----------------------------------------------------------------------------

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise LabError(f"{self.state_path} is not valid JSON ({exc}); remove it and run `clusterctl lab down`") from exc

    def _write_state(self, state: dict) -> None:
        write_atomically(self.state_path, json.dumps(state, indent=2) + "\n")

    @property
    def hosts(self) -> list[LabHost]:
        """The hosts of the lab as recorded in lab.json (empty when the lab is down)."""
        state = self._read_state()
        return [LabHost.from_json(h) for h in state["hosts"]] if state else []

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                self._check_slot_is_ours()
                return host
        known = ", ".join(h.name for h in self.hosts) or "none: the lab is down"
        raise HostNotFound(f"no host {name!r} in the lab at {self.dir} (hosts: {known})")

    def _check_slot_is_ours(self) -> None:
        state = self._read_state()
        claim = read_claim(int(state["slot"])) if state else None
        if claim is None or claim.get("dir") != str(self.dir):
            raise LabError(
                f"the lab at {self.dir} no longer owns its slot (it was cleaned up as an orphan): "
                f"run `clusterctl lab up N --dir {self.dir}` again"
            )

    @property
    def tools(self) -> LabTools:
        if self._tools is None:
            self._tools = check_prerequisites()
        return self._tools

    @contextlib.contextmanager
    def _dir_lock(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- up / down -------------------------------------------------------------------------

    def up(self, n: int) -> list[LabHost]:
        """Make ``n`` fresh hosts h1..hN (removing any earlier run of this dir first)."""
        if not 1 <= n <= MAX_HOSTS:
            raise LabError(f"a lab has 1 to {MAX_HOSTS} hosts, not {n}")
        self.tools  # noqa: B018 - fail on missing prerequisites before touching anything
        try:
            with self._dir_lock():
                return self._up(n)
        except OSError as exc:
            raise LabError(f"lab at {self.dir}: {exc}") from exc

    def _up(self, n: int) -> list[LabHost]:
        tools = self.tools
        self._down()
        client_public = ensure_client_key(self.key_path, f"clusterctl-lab@{self.dir}")
        (RUN_DIR / "stage").mkdir(parents=True, exist_ok=True)

        with slot_lock():
            names = allocate_slot(
                self.dir, self.owner_pid,
                sweep=lambda stale: network.teardown(tools.ip, stale, [], []),
                observe=lambda: MachineNetwork.observe(tools.ip),
            )
            hosts = [
                LabHost(f"h{i}", names.ip(i), names.netns(i), names.veth(i), self.dir / "hosts" / f"h{i}")
                for i in range(1, n + 1)
            ]
            state = {
                "version": STATE_VERSION, "dir": str(self.dir), "slot": names.slot, "bridge": names.bridge,
                "subnet": names.subnet, "gateway": names.gateway, "owner_pid": self.owner_pid,
                "hosts": [h.to_json() for h in hosts],
            }
            # written under the lock: from now on the claim is live, never taken for an orphan
            self._write_state(state)
            try:
                network.create_bridge(tools.ip, names)
            except LabError:
                self._abort_up(names)
                raise

        try:
            network.wire_hosts(tools.ip, names, range(1, n + 1))
            cgroups = tuple(machine_cgroup_mounts())
            links = tuple(machine_cgroup_links().items())
            specs = {h.name: self._boot_spec(h, cgroups, links) for h in hosts}
            host_keys = self._write_disks_and_boot(hosts, specs, client_public)
            self._wait_ready(hosts)
        except BaseException:
            self._down()
            raise
        write_atomically(self.known_hosts_path, known_hosts_text([(h.ip, host_keys[h.name]) for h in hosts]))
        write_atomically(self.inventory_path, inventory_text(hosts, self.key_path, self.known_hosts_path))
        return hosts

    def _abort_up(self, names: SlotNames) -> None:
        with contextlib.suppress(LabError):
            network.teardown(self.tools.ip, names, [], [])
        release_claim(names.slot, self.dir)
        with contextlib.suppress(FileNotFoundError):
            self.state_path.unlink()

    def down(self) -> None:
        """Remove every process, veth, namespace, bridge and disk of this lab; safe to repeat."""
        if not self.dir.exists():
            return
        self.tools  # noqa: B018 - fail on missing prerequisites before touching anything
        try:
            with self._dir_lock():
                self._down()
        except OSError as exc:
            raise LabError(f"lab at {self.dir}: {exc}") from exc

    def _down(self) -> None:
        state = self._read_state()
        if state is None:
            self._remove_disks()
            return
        tools = self.tools
        names = SlotNames(int(state["slot"]))
        hosts = [LabHost.from_json(h) for h in state.get("hosts", [])]
        with slot_lock():
            ours = claim_for_teardown(names.slot, self.dir)
        if ours:
            network.teardown(tools.ip, names, [h.netns for h in hosts], [h.veth for h in hosts] + [names.bridge])
            self._reap_children()
            release_claim(names.slot, self.dir)
        else:
            # this lab was swept as an orphan (its processes are dead) and its slot now belongs
            # to another lab: touch none of the slot's names
            self._reap_children()
        for path in (self.state_path, self.inventory_path, self.known_hosts_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self._remove_disks()

    def _remove_disks(self) -> None:
        hosts_dir = self.dir / "hosts"
        if not hosts_dir.exists():
            return
        # rmdir costs ~0.1-0.4 ms on this disk and a host has ~30 folders: one thread per host
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda p: shutil.rmtree(p, ignore_errors=True), list(hosts_dir.iterdir())))
        shutil.rmtree(hosts_dir, ignore_errors=True)

    # -- faults ----------------------------------------------------------------------------

    def stop(self, name: str) -> None:
        """Power the host off: every process in it dies at once; its disk and host key stay."""
        with self._dir_lock():
            host = self.host(name)
            network.kill_netns_processes([host.netns])
            self._reap_children(host.name)

    def start(self, name: str) -> None:
        """Power the host on again (same disk, same host key) and wait for its sshd."""
        with self._dir_lock():
            host = self.host(name)
            if network.netns_pids([host.netns])[host.netns]:
                return  # already running
            spec = self._boot_spec(host, tuple(machine_cgroup_mounts()), tuple(machine_cgroup_links().items()))
            write_boot_files(spec)
            self._boot(spec, host)
            self._wait_ready([host])

    def kill_sshd(self, name: str) -> None:
        """Kill every sshd in the host (listener and sessions) and leave the host running: its
        address answers, its port 22 refuses. ``stop`` + ``start`` brings sshd back."""
        host = self.host(name)
        killed = []
        for pid in network.netns_pids([host.netns])[host.netns]:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sshd":
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            except (OSError, ProcessLookupError):
                continue
        # SIGKILL is asynchronous: until a killed sshd has exited its listening socket still
        # accepts (seconds on a loaded machine). Return once they are gone (zombies count as gone)
        deadline = time.monotonic() + 60
        while killed and time.monotonic() < deadline:
            alive = set(network.netns_pids([host.netns])[host.netns])
            killed = [pid for pid in killed if pid in alive]
            if killed:
                time.sleep(0.01)
        if killed:
            raise LabError(f"lab host {name}: sshd {killed} still alive 60 s after SIGKILL")

    def cut(self, name: str) -> None:
        """Take the host's network away (its veth goes down: packets are dropped, not refused)."""
        network.set_link(self.tools.ip, self.host(name).veth, up=False)

    def heal(self, name: str) -> None:
        """Give the host its network back.

        Neighbour (ARP) entries for the host that went stale during the cut are flushed in the
        machine and in the other hosts: a resolution started during the cut would otherwise
        fail a first connection after the heal with "No route to host"."""
        host = self.host(name)
        state = self._read_state() or {}
        network.set_link(self.tools.ip, host.veth, up=True)
        network.ip_batch(self.tools.ip, [f"neigh flush to {host.ip} dev {state.get('bridge', '')}"], force=True)
        others = [h for h in self.hosts if h.name != host.name]
        running = network.netns_pids([h.netns for h in others])
        flushes = [
            subprocess.Popen([self.tools.ip, "-n", h.netns, "neigh", "flush", "to", host.ip],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for h in others if running.get(h.netns)
        ]
        for proc in flushes:
            proc.wait()

    # -- observation -----------------------------------------------------------------------

    def status(self) -> list[dict]:
        """One dict per host: name, ip, netns, power ("running"/"stopped"), link ("up"/"cut"/
        "missing"), ssh (True if it is running, its link is up and something listens on port 22)."""
        hosts = self.hosts
        if hosts:
            self.tools  # noqa: B018 - other users cannot see the hosts' processes
            self._check_slot_is_ours()
        pids = network.netns_pids([h.netns for h in hosts])
        rows = []
        for host in hosts:
            running = bool(pids.get(host.netns))
            link = network.link_is_up(host.veth)
            rows.append({
                "name": host.name, "ip": host.ip, "netns": host.netns,
                "power": "running" if running else "stopped",
                "link": "up" if link else ("cut" if link is False else "missing"),
                "ssh": running and bool(link) and _listening(pids[host.netns][0], 22),
            })
        return rows

    def ssh_argv(self, name: str, *command: str) -> list[str]:
        """An ``ssh`` command line that reaches the host as root with strict host key checking."""
        host = self.host(name)
        return [
            "ssh", "-i", str(self.key_path), "-o", f"UserKnownHostsFile={ssh_option_path(self.known_hosts_path)}",
            "-o", "StrictHostKeyChecking=yes", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
            "-o", "LogLevel=ERROR", f"root@{host.ip}", *command,
        ]

    def exec_argv(self, name: str, *command: str) -> list[str]:
        """A command line that runs ``command`` inside the host without SSH (via its PID 1's
        namespaces): for tests that check a host's state independently of sshd."""
        host = self.host(name)
        init = self._init_pid(host)
        return ["nsenter", "-t", str(init), "-m", "-u", "-p", "-n", "-i", "--", *command]

    def _init_pid(self, host: LabHost) -> int:
        for pid in network.netns_pids([host.netns])[host.netns]:
            try:
                with open(f"/proc/{pid}/status") as handle:
                    for line in handle:
                        if line.startswith("NSpid:"):
                            ids = line.split()[1:]
                            if len(ids) >= 2 and ids[-1] == "1":
                                return pid
                            break
            except OSError:
                continue
        raise LabError(f"host {host.name} is not running (no init in netns {host.netns})")

    # -- internals -------------------------------------------------------------------------

    def _write_disks_and_boot(self, hosts: list[LabHost], specs: dict[str, BootSpec], client_public: str) -> dict[str, str]:
        """Create each host's disk (layout, host key, sshd_config, /etc/hosts, root's
        authorized_keys, boot fstabs) and boot it at once, so early hosts boot while later
        disks are written. Returns each host's public host key."""
        etc_hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + "".join(
            f"{h.ip}\t{h.name}\n" for h in hosts
        )

        def write(host: LabHost) -> str:
            layout = HostLayout(host.state_dir)
            layout.create()
            pair = KeyPair.generate()
            pair.write(layout.etc / "ssh" / "ssh_host_ed25519_key", f"root@{host.name}")
            (layout.etc / "ssh" / "sshd_config").write_text(sshd_config(host.ip))
            (layout.etc / "hostname").write_text(f"{host.name}\n")
            (layout.etc / "hosts").write_text(etc_hosts)
            authorized = layout.root_home / ".ssh" / "authorized_keys"
            authorized.write_text(f"{client_public} clusterctl-lab\n")
            authorized.chmod(0o600)
            write_boot_files(specs[host.name])
            self._boot(specs[host.name], host)
            return pair.public_openssh

        # mkdir on this disk costs 0.1-0.4 ms (more under load) and a host needs ~30: threads
        with ThreadPoolExecutor(max_workers=min(8, len(hosts))) as pool:
            return dict(zip((h.name for h in hosts), pool.map(write, hosts)))

    def _boot_spec(self, host: LabHost, cgroups: tuple, cgroup_links: tuple) -> BootSpec:
        tools = self.tools
        return BootSpec(
            hostname=host.name, ip=host.ip, prefixlen=24, layout=HostLayout(host.state_dir), sshd=tools.sshd,
            tini=tools.tini, cgroups=cgroups, cgroup_links=cgroup_links, shared=product_paths(),
        )

    def _boot(self, spec: BootSpec, host: LabHost) -> None:
        """Start the host's process tree (boot files must be written); returns at once."""
        tools = self.tools
        argv = [
            tools.ip, "netns", "exec", host.netns,
            # slave, not private: unmounts elsewhere on the machine still reach the host, so a
            # host never pins other people's mounts; the host's own mounts stay inside it
            tools.unshare, "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "slave",
            "--mount-proc",
            "/bin/sh", "-c", boot_script(spec),
        ]
        with open(spec.layout.console_log, "ab") as console:
            self._children[host.name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )

    def _wait_ready(self, hosts: list[LabHost]) -> None:
        """Wait until each host's sshd listens on port 22.

        sshd writes its pid file only after binding its listening sockets, so the file's
        appearance in the host's /run (seen through /proc/PID/root of a process in the host's
        mount namespace) is the signal. Cheaper than reading /proc/PID/net/tcp (which walks the
        kernel's whole TCP hash) and than connecting (a probe sent before the host's eth0 is up
        waits on ARP for a second)."""
        pending = {h.name: h for h in hosts}
        # many hosts boot on few CPUs: allow a little more per host
        timeout = self.boot_timeout + BOOT_TIMEOUT_PER_HOST * len(hosts)
        deadline = time.monotonic() + timeout
        delay = 0.002
        while pending:
            # a scan of /proc costs ~1000 stats: only for hosts booted by another process
            orphans = [h.netns for name, h in pending.items() if name not in self._children]
            pids = network.netns_pids(orphans) if orphans else {}
            for name, host in list(pending.items()):
                child = self._children.get(name)
                if child is not None and child.poll() is not None:
                    raise HostBootFailed(f"host {name} exited during boot (rc {child.returncode}): {_tail(host.console_log)}")
                probe = child.pid if child is not None else next(iter(pids.get(host.netns, [])), None)
                if probe is not None and os.path.exists(f"/proc/{probe}/root{SSHD_PID_FILE}"):
                    del pending[name]
            if not pending:
                return
            if time.monotonic() > deadline:
                name, host = next(iter(pending.items()))
                raise HostBootFailed(
                    f"{len(pending)} host(s) ({', '.join(pending)}) not listening on port 22 after "
                    f"{timeout:.0f} s; {name}: {_tail(host.console_log)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def _reap_children(self, name: str | None = None) -> None:
        for key in [name] if name else list(self._children):
            child = self._children.pop(key, None)
            if child is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)


def _listening(pid: int, port: int) -> bool:
    """Does the network namespace of ``pid`` have a TCP socket listening on ``port``?"""
    needle = f":{port:04X} "
    try:
        with open(f"/proc/{pid}/net/tcp") as handle:
            next(handle, None)
            for line in handle:
                fields = line.split()
                if len(fields) > 3 and fields[3] == "0A" and (fields[1] + " ").endswith(needle):
                    return True
    except OSError:
        return False
    return False


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no console log)"
    return " | ".join(text[-lines:]) or "(console empty)"
