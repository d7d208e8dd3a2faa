"""The provisioning/upgrade view: follows a ``clusterctl provision|upgrade --log-json`` feed.

``FeedState`` folds the feed's events (``provision.output.RunOutput._event``: play_start,
task_start, host_start, host_result, warning, recap) into a hosts × tasks grid; ``FeedView`` shows
it — one row per task, one column per host, ``ok``/``changed``/``FAILED``/``skip``/``UNREACH``/``...``
(running) in each cell — with per-host changed/failed counts, the failures' messages and, at the
end, the recap. ``follow_feed`` tails the file like ``tail -f`` (the writer flushes every event), at
an injectable interval, and survives the file not existing yet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static

CELL = {"ok": ("ok", "green"), "changed": ("changed", "yellow"), "failed": ("FAILED", "bold red"),
        "skipped": ("skip", "cyan"), "unreachable": ("UNREACH", "bold red"), "running": ("...", "blue")}


@dataclass
class FeedState:
    playbook: str = ""
    play: str = ""
    hosts: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)  # row ids: "play: task" in order, unique
    cells: dict[tuple[int, str], str] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    recap: dict[str, dict] | None = None
    duration_s: float | None = None
    events: int = 0

    def apply(self, event: dict) -> None:
        self.events += 1
        kind = event.get("event")
        if kind == "playbook_start":
            self.playbook = str(event.get("playbook", ""))
        elif kind == "play_start":
            self.play = str(event.get("play", ""))
            for h in event.get("hosts") or []:
                if h not in self.hosts:
                    self.hosts.append(h)
        elif kind == "task_start":
            self.tasks.append(str(event.get("task", "")))
        elif kind in ("host_start", "host_result"):
            host = str(event.get("host", ""))
            if host not in self.hosts:
                self.hosts.append(host)
            if not self.tasks:
                self.tasks.append(str(event.get("task", "")))
            row = len(self.tasks) - 1
            if kind == "host_start":
                self.cells[(row, host)] = "running"
                return
            status = str(event.get("status", "ok"))
            if status == "ok" and event.get("changed"):
                status = "changed"
            self.cells[(row, host)] = status
            if status == "changed":
                self.changed[host] = self.changed.get(host, 0) + 1
            if status in ("failed", "unreachable"):
                if not event.get("ignored"):
                    self.failed[host] = self.failed.get(host, 0) + 1
                self.failures.append(f"{host}: {event.get('task', '')}: {event.get('msg', '')}")
        elif kind == "warning":
            self.warnings.append(str(event.get("msg", "")))
        elif kind == "recap":
            self.recap = event.get("hosts") or {}
            self.duration_s = event.get("duration_s")

    def recap_lines(self) -> list[str]:
        if self.recap is None:
            return []
        width = max([10] + [len(h) for h in self.recap])
        return [f"{h:<{width}} : " + " ".join(f"{k}={v}" for k, v in stats.items()) for h, stats in self.recap.items()]


async def follow_feed(path: Path, *, interval: float = 0.1, follow: bool = True) -> AsyncIterator[dict]:
    """Yield the feed's events as they are written (``follow=False``: what is there, then stop)."""
    offset = 0
    pending = b""
    while True:
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            data = b""
        if data:
            offset += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue  # a torn or foreign line: the feed goes on
        elif not follow:
            return
        else:
            await asyncio.sleep(interval)


class FeedView(Vertical):
    """The hosts × tasks grid of a feed; ``update_from(state)`` after events."""

    can_focus = True
    DEFAULT_CSS = """
    FeedView { height: 1fr; }
    FeedView > #feed-grid { height: 1fr; }
    FeedView > #feed-summary { height: auto; max-height: 12; padding: 0 1; }
    """

    def __init__(self, state: FeedState, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.state = state
        self._shape: tuple[int, int] = (-1, -1)

    def compose(self) -> ComposeResult:
        yield Static("", id="feed-header")
        yield DataTable(id="feed-grid", cursor_type="row")
        yield Static("", id="feed-summary")

    def on_mount(self) -> None:
        self.update_from(self.state)

    def update_from(self, state: FeedState) -> None:
        self.state = state
        grid = self.query_one("#feed-grid", DataTable)
        done = sum(1 for s in state.cells.values() if s != "running")
        status = "finished" if state.recap is not None else ("waiting for the feed" if not state.events else "running")
        self.query_one("#feed-header", Static).update(
            f"Provisioning {state.playbook or ''}  play: {state.play or '-'}  {len(state.hosts)} hosts, {len(state.tasks)} tasks, "
            f"{done} results — {status}")
        grid.clear(columns=True)
        grid.add_column("TASK", key="task")
        for h in state.hosts:
            grid.add_column(h, key=h)
        for i, task in enumerate(state.tasks):
            row: list[Text | str] = [task]
            for h in state.hosts:
                s = state.cells.get((i, h))
                label, style = CELL.get(s or "", ("", ""))
                row.append(Text(label, style=style))
            grid.add_row(*row, key=str(i))
        if state.tasks:
            grid.move_cursor(row=len(state.tasks) - 1, animate=False)
        lines = ["changed: " + ", ".join(f"{h}={state.changed.get(h, 0)}" for h in state.hosts),
                 "failed:  " + ", ".join(f"{h}={state.failed.get(h, 0)}" for h in state.hosts)]
        lines += [f"FAILED {f}" for f in state.failures[-5:]]
        lines += [f"[WARNING] {w}" for w in state.warnings[-3:]]
        if state.recap is not None:
            lines.append(f"PLAY RECAP ({state.duration_s or 0:.1f}s)")
            lines += state.recap_lines()
        self.query_one("#feed-summary", Static).update(Text("\n".join(lines)))
