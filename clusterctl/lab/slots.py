"""Machine-wide slots, so that concurrent labs never collide on a name or a subnet.

Every lab on the machine owns one *slot* k (1..254), allocated under a file lock in
``/run/clusterctl-lab/``. The slot decides every machine-wide name of the lab (Linux interface
names are at most 15 characters): bridge ``ccl<k>br``, veths ``ccl<k>v<i>``, network
namespaces ``ccl<k>-h<i>``, and its subnet 10.200.k.0/24 (bridge .1, host i at .10+i).

A slot is taken while its claim file ``slots/<k>.json`` names a lab dir whose ``lab.json`` still
records slot k (and, for labs owned by a process such as a test session, that process lives),
or while anything of the machine still uses its names or subnet. A claim whose lab is gone is
an orphan (a crash, a deleted test dir): its leftovers are swept and the slot reused. The
caller writes its ``lab.json`` while still holding the lock, so a fresh claim is never mistaken
for an orphan.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from clusterctl.lab.errors import LabError, SlotsExhausted

RUN_DIR = Path(os.environ.get("CLUSTERCTL_LAB_RUN_DIR", "/run/clusterctl-lab"))
NAME_PREFIX = "ccl"
FIRST_SLOT, LAST_SLOT = 1, 254
#: host i gets 10.200.k.(HOST_OFFSET + i), so at most 254 - HOST_OFFSET hosts per lab
HOST_OFFSET = 10
MAX_HOSTS = 254 - HOST_OFFSET


@dataclass(frozen=True)
class SlotNames:
    """Every machine-wide name and address derived from one slot."""

    slot: int

    @property
    def bridge(self) -> str:
        return f"{NAME_PREFIX}{self.slot}br"

    @property
    def subnet(self) -> str:
        return f"10.200.{self.slot}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.200.{self.slot}.1"

    @property
    def link_group(self) -> int:
        """The link group of the slot's veths: one ``ip link del group`` removes them all in one
        kernel batch (30 single deletions cost ~0.4 s of RCU waits; the group, ~20 ms)."""
        return 0x63636C00 | self.slot  # "ccl" + slot

    def veth(self, index: int) -> str:
        return f"{NAME_PREFIX}{self.slot}v{index}"

    def netns(self, index: int) -> str:
        return f"{NAME_PREFIX}{self.slot}-h{index}"

    def ip(self, index: int) -> str:
        return f"10.200.{self.slot}.{HOST_OFFSET + index}"

    def owns_link(self, name: str) -> bool:
        return re.fullmatch(rf"{NAME_PREFIX}{self.slot}(br|v\d+)", name) is not None

    def owns_netns(self, name: str) -> bool:
        return re.fullmatch(rf"{NAME_PREFIX}{self.slot}-h\d+", name) is not None


@contextlib.contextmanager
def slot_lock(run_dir: Path = RUN_DIR) -> Iterator[None]:
    """Hold the machine-wide lock over slot claims (and over creating the claimed bridge)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def claim_path(slot: int, run_dir: Path = RUN_DIR) -> Path:
    return run_dir / "slots" / f"{slot}.json"


def read_claim(slot: int, run_dir: Path = RUN_DIR) -> dict | None:
    try:
        return json.loads(claim_path(slot, run_dir).read_text())
    except (OSError, ValueError):
        return None


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), to tell it from a later reuse of the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def write_claim(slot: int, lab_dir: Path, owner_pid: int | None, run_dir: Path = RUN_DIR) -> None:
    path = claim_path(slot, run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    owner_start = process_start_time(owner_pid) if owner_pid is not None else None
    tmp.write_text(json.dumps({"dir": str(lab_dir), "owner_pid": owner_pid, "owner_start": owner_start}))
    os.replace(tmp, path)


def claim_for_teardown(slot: int, lab_dir: Path, run_dir: Path = RUN_DIR) -> bool:
    """May ``lab_dir`` tear down slot ``slot``? Call with ``slot_lock`` held.

    Yes if the claim is its own, or if there is no claim (then it takes one, so nobody reuses
    the slot while the leftovers are removed). No if another lab holds the slot now: the slot
    was reclaimed after this lab was found orphaned, and its names belong to someone else.
    """
    claim = read_claim(slot, run_dir)
    if claim is None:
        write_claim(slot, lab_dir, None, run_dir)
        return True
    return claim.get("dir") == str(lab_dir)


def release_claim(slot: int, lab_dir: Path, run_dir: Path = RUN_DIR) -> None:
    """Drop the claim on ``slot`` if ``lab_dir`` holds it (never someone else's)."""
    claim = read_claim(slot, run_dir)
    if claim is not None and claim.get("dir") == str(lab_dir):
        with contextlib.suppress(FileNotFoundError):
            claim_path(slot, run_dir).unlink()


def claim_is_live(slot: int, claim: dict) -> bool:
    """Does the lab that claimed ``slot`` still exist (its lab.json records the slot)?"""
    owner = claim.get("owner_pid")
    if owner is not None:
        started = process_start_time(int(owner))
        if started is None or started != claim.get("owner_start", started):
            return False  # the owner died (its pid may since belong to another process)
    try:
        state = json.loads((Path(claim["dir"]) / "lab.json").read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return state.get("slot") == slot


@dataclass(frozen=True)
class MachineNetwork:
    """What the root namespace already uses: interface names, netns names, IPv4 routes."""

    links: frozenset[str]
    netns: frozenset[str]
    routes: tuple[ipaddress.IPv4Network, ...]

    @classmethod
    def observe(cls, ip: str = "ip") -> MachineNetwork:
        links = frozenset(os.listdir("/sys/class/net"))
        try:
            netns = frozenset(os.listdir("/run/netns"))
        except FileNotFoundError:
            netns = frozenset()
        out = subprocess.run([ip, "-4", "-j", "route", "show", "table", "all"],
                             capture_output=True, text=True, check=False).stdout
        routes: list[ipaddress.IPv4Network] = []
        for route in json.loads(out or "[]"):
            dst = route.get("dst", "")
            if dst in ("default", "") or route.get("type") in ("broadcast",):
                continue
            with contextlib.suppress(ValueError):
                routes.append(ipaddress.IPv4Network(dst, strict=False))
        return cls(links=links, netns=netns, routes=tuple(routes))

    def uses(self, names: SlotNames) -> bool:
        subnet = ipaddress.IPv4Network(names.subnet)
        return (
            any(names.owns_link(name) for name in self.links)
            or any(names.owns_netns(name) for name in self.netns)
            or any(route.overlaps(subnet) and route.prefixlen >= 16 for route in self.routes)
        )


def allocate_slot(
    lab_dir: Path,
    owner_pid: int | None,
    *,
    sweep: Callable[[SlotNames], None],
    observe: Callable[[], MachineNetwork],
    run_dir: Path = RUN_DIR,
) -> SlotNames:
    """Claim the lowest free slot for ``lab_dir``; call with ``slot_lock`` held.

    First every orphaned claim on the machine is swept (``sweep`` removes that slot's processes,
    namespaces, veths and bridge), so crashed labs do not pile up. A slot whose names or subnet
    are in use by anything else is skipped.
    """
    for slot in range(FIRST_SLOT, LAST_SLOT + 1):
        claim = read_claim(slot, run_dir)
        if claim is not None and not claim_is_live(slot, claim):
            try:
                sweep(SlotNames(slot))
            except LabError:
                continue  # leave the claim: its slot stays blocked rather than half-reused
            with contextlib.suppress(FileNotFoundError):
                claim_path(slot, run_dir).unlink()
    network = observe()
    for slot in range(FIRST_SLOT, LAST_SLOT + 1):
        names = SlotNames(slot)
        if read_claim(slot, run_dir) is not None or network.uses(names):
            continue
        write_claim(slot, lab_dir, owner_pid, run_dir)
        return names
    raise SlotsExhausted(
        f"all {LAST_SLOT} lab slots on this machine are taken (see {run_dir}/slots): "
        "run `clusterctl lab down --dir DIR` for labs you no longer need"
    )
