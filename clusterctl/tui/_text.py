"""Full-screen text views: describe / YAML (``TextScreen``) and container logs (``LogScreen``).

``LogScreen`` keys: ``f`` follow on/off, ``t`` timestamps on/off, ``p`` previous container,
``esc`` back. Log reads run in workers: a slow node never freezes the keys.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Log, Static, TextArea

from clusterctl.client.rest import Obj
from clusterctl.tui._actions import ClusterActions, TuiActionError


class TextScreen(Screen):
    """Read-only text (describe, YAML, the scheduler's explanation); ``esc`` back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("q", "app.pop_screen", "back", show=False)]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.title_text, id="text-title", classes="title")
        yield TextArea(self.text, read_only=True, id="text-body", show_line_numbers=False, soft_wrap=False)
        yield Footer()


class LogScreen(Screen):
    """A container's log; ``f`` follow, ``t`` timestamps, ``p`` previous, ``esc`` back."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("f", "toggle_follow", "follow"),
        Binding("t", "toggle_timestamps", "timestamps"),
        Binding("p", "toggle_previous", "previous"),
    ]

    def __init__(self, actions: ClusterActions, pod: Obj, container: str | None) -> None:
        super().__init__()
        self.actions = actions
        self.pod = pod
        self.container = container or ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
        self.follow = False
        self.timestamps = False
        self.previous = False

    def compose(self) -> ComposeResult:
        yield Static(self._title(), id="log-title", classes="title")
        yield Log(id="log-body", highlight=False)
        yield Footer()

    def _title(self) -> str:
        meta = self.pod["metadata"]
        flags = [f"follow={'on' if self.follow else 'off'}", f"timestamps={'on' if self.timestamps else 'off'}",
                 f"previous={'on' if self.previous else 'off'}"]
        return f"Logs {meta.get('namespace')}/{meta['name']} [{self.container}]  " + "  ".join(flags)

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="logs")
    async def load(self) -> None:
        body = self.query_one("#log-body", Log)
        self.query_one("#log-title", Static).update(self._title())
        try:
            text = await self.actions.logs(self.pod, container=self.container, previous=self.previous, timestamps=self.timestamps)
        except TuiActionError as exc:
            body.clear()
            body.write_line(f"error: {exc}")
            return
        body.clear()
        body.write(text if text.endswith("\n") or not text else text + "\n")
        if not text:
            body.write_line("(no output)")
        if self.follow and not self.previous:
            try:
                async for chunk in self.actions.follow(self.pod, container=self.container):
                    body.write(chunk.decode(errors="replace"))
            except asyncio.CancelledError:
                raise
            except TuiActionError as exc:
                body.write_line(f"(follow stopped: {exc})")

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.load()

    def action_toggle_timestamps(self) -> None:
        self.timestamps = not self.timestamps
        self.load()

    def action_toggle_previous(self) -> None:
        self.previous = not self.previous
        self.load()
