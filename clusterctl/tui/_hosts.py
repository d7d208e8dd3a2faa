"""The Hosts view: the inventory's machines (``clusterctl tui -i INVENTORY``) with facts and reachability.

``HostProbe`` opens an SSH connection to each host the way provisioning does
(``provision.inventory.connection_spec`` + ``HostConnection``), gathers facts with the same script,
and records reachable/unreachable with the error. Probes run concurrently in a worker, again
every ``interval`` seconds (injectable) or on ``ctrl+r``; the table shows the last answer and when
it came, so a dead machine shows as UNREACHABLE within one round.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from clusterctl.provision.inventory import Inventory, connection_spec, load_inventory

COLUMNS = ("HOST", "ADDRESS", "GROUPS", "REACHABLE", "OS", "KERNEL", "CPUS", "MEMORY", "UPTIME", "CHECKED")


@dataclass
class HostStatus:
    name: str
    address: str
    groups: str
    reachable: bool | None = None  # None: not probed yet
    error: str = ""
    facts: dict = field(default_factory=dict)
    checked: float | None = None

    def cells(self, now: float) -> list[str]:
        f = {k.removeprefix("ansible_"): v for k, v in self.facts.items()}
        os_name = " ".join(str(x) for x in (f.get("distribution"), f.get("distribution_version")) if x)
        mem = f.get("memtotal_mb")
        up = f.get("uptime_seconds")
        reach = "…" if self.reachable is None else ("yes" if self.reachable else f"UNREACHABLE: {self.error}"[:60])
        return [self.name, self.address, self.groups, reach, os_name or "-", str(f.get("kernel") or "-"),
                str(f.get("processor_vcpus") or "-"), f"{mem} MiB" if mem else "-",
                f"{int(up) // 3600}h{int(up) % 3600 // 60:02d}m" if isinstance(up, (int, float)) else "-",
                "-" if self.checked is None else f"{int(now - self.checked)}s ago"]


class HostProbe:
    """Reachability + facts of every host of an inventory."""

    def __init__(self, inventory: Inventory | str, *, timeout: float = 10.0) -> None:
        self.inventory = load_inventory([inventory]) if isinstance(inventory, str) else inventory
        self.timeout = timeout
        self.hosts: dict[str, HostStatus] = {}
        for name in self.inventory.select("all"):
            spec = connection_spec(self.inventory, name)
            host = self.inventory.get_host(name)
            groups = ",".join(sorted(g for g in (getattr(host, "groups", None) or []) if g not in ("all", "ungrouped"))) if host else ""
            self.hosts[name] = HostStatus(name, f"{spec.host}:{spec.port}", groups)

    async def probe(self, name: str) -> HostStatus:
        from clusterctl.provision.connection import HostConnection
        from clusterctl.provision.facts import gather_facts
        status = self.hosts[name]
        spec = connection_spec(self.inventory, name)
        spec.connect_timeout = min(spec.connect_timeout, self.timeout)
        try:
            async with asyncio.timeout(self.timeout):
                conn = await HostConnection.open(spec)
            try:
                facts = await gather_facts(conn, timeout=self.timeout)
            finally:
                await conn.close()
            status.reachable, status.error = True, ""
            status.facts = facts.get("ansible_facts", facts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure to reach or query a machine is its status, not ours
            status.reachable, status.error = False, (str(exc) or type(exc).__name__).splitlines()[0]
        status.checked = time.monotonic()
        return status

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(n) for n in self.hosts))


class HostsView(DataTable):
    """The Hosts table; ``ctrl+r`` probes again now."""

    BINDINGS = [Binding("ctrl+r", "reprobe", "probe again")]

    def __init__(self, probe: HostProbe | None, *, interval: float = 30.0, classes: str | None = None) -> None:
        super().__init__(classes=classes, cursor_type="row")
        self.probe = probe
        self.interval = interval
        self.rounds = 0

    def on_mount(self) -> None:
        for c in COLUMNS:
            self.add_column(c, key=c)
        self.show()
        if self.probe is not None:
            self.run_worker(self._loop(), group="hosts", exclusive=True)

    def show(self) -> None:
        keep = self.cursor_row
        self.clear()
        if self.probe is None:
            self.add_row(*(Text(c) for c in ["(no inventory: start with clusterctl tui -i INVENTORY)"] + [""] * (len(COLUMNS) - 1)))
            return
        now = time.monotonic()
        for status in self.probe.hosts.values():
            style = "" if status.reachable else ("red" if status.reachable is False else "dim")
            self.add_row(*(Text(c, style=style, no_wrap=True) for c in status.cells(now)), key=status.name)
        if self.row_count:
            self.move_cursor(row=min(keep, self.row_count - 1), animate=False)

    async def _loop(self) -> None:
        assert self.probe is not None
        while True:
            await self.probe.probe_all()
            self.rounds += 1
            self.show()
            await asyncio.sleep(self.interval)

    def action_reprobe(self) -> None:
        if self.probe is not None:
            self.run_worker(self._loop(), group="hosts", exclusive=True)
