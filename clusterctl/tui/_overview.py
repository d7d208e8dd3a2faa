"""``Overview``: the whole cluster on one screen — nodes Ready/total, pods by phase, CPU and memory
requested vs allocatable as bars, and the most recent Warning events. Recomputed from the informer
caches when anything changes (coalesced by the app), never from the API server."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone

from rich.console import Console
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from clusterctl.api import tables
from clusterctl.client.quantity import format_cpu, format_memory
from clusterctl.tui._kinds import active_pod, bar, node_usage, pod_requests
from clusterctl.tui._source import ClusterSource

PHASES = ("Running", "Pending", "Succeeded", "Failed", "Unknown")


def overview_text(source: ClusterSource, now: datetime, *, warnings: int = 8) -> Table:
    nodes = source.list("nodes")
    pods = source.list("pods")
    ready = sum(1 for n in nodes if tables.node_status(n).startswith("Ready"))
    cordoned = sum(1 for n in nodes if (n.get("spec") or {}).get("unschedulable"))
    phases = Counter((p.get("status") or {}).get("phase") or "Unknown" for p in pods)
    cpu = cpu_alloc = mem = mem_alloc = 0
    for n in nodes:
        _, _, c_alloc, _, m_alloc = node_usage(n, source)
        cpu_alloc += c_alloc
        mem_alloc += m_alloc
    for p in pods:
        if (p.get("spec") or {}).get("nodeName") and active_pod(p):
            c, m = pod_requests(p)
            cpu, mem = cpu + c, mem + m
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    node_style = "green" if ready == len(nodes) and nodes else "red"
    grid.add_row("Nodes", Text(f"{ready}/{len(nodes)} Ready" + (f", {cordoned} cordoned" if cordoned else ""), style=node_style))
    pod_text = Text(f"{len(pods)} pods: ")
    for i, phase in enumerate(PHASES):
        style = {"Running": "green", "Pending": "yellow", "Failed": "red"}.get(phase, "")
        pod_text.append(f"{phase} {phases.get(phase, 0)}", style=style if phases.get(phase) else "")
        if i < len(PHASES) - 1:
            pod_text.append("  ")
    grid.add_row("Pods", pod_text)
    grid.add_row("CPU", Text(f"{bar(cpu, cpu_alloc, 30)}  {format_cpu(cpu)} of {format_cpu(cpu_alloc)} CPU requested"))
    grid.add_row("Memory", Text(f"{bar(mem, mem_alloc, 30)}  {format_memory(mem)} of {format_memory(mem_alloc)} requested"))
    counts = ", ".join(f"{len(source.list(r))} {r}" for r in ("namespaces", "deployments", "services", "jobs"))
    grid.add_row("Objects", Text(counts))
    recent = sorted((e for e in source.list("events") if e.get("type") == "Warning"),
                    key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""), reverse=True)[:warnings]
    grid.add_row("", "")
    grid.add_row("Warnings", Text("none", style="green") if not recent else "")
    for e in recent:
        row = tables._event_row(e, now)
        grid.add_row(Text(row[0], style="yellow"), Text(f"{row[2]}  {row[3]}  {row[6]}", style="yellow", no_wrap=True, overflow="ellipsis"))
    return grid


class Overview(Static):
    """The Overview view; ``recompute()`` after changes."""

    can_focus = True
    DEFAULT_CSS = """
    Overview { height: 1fr; padding: 1 2; }
    """

    def __init__(self, source: ClusterSource, *, now: Callable[[], datetime] | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.source = source
        self.now = now or (lambda: datetime.now(timezone.utc))

    def on_mount(self) -> None:
        self.recompute()

    def recompute(self) -> None:
        self.summary = overview_text(self.source, self.now())
        self.update(self.summary)

    def plain(self, width: int = 120) -> str:
        """The overview as plain text (tests, tmux-free checks)."""
        console = Console(width=width, record=True, file=io.StringIO())
        console.print(self.summary)
        return console.export_text()
